"""Authentication for REST sources: config models (secrets from the environment) and the pooled session
each one needs."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
import requests
from pydantic import Field

from connectors.errors import AuthError
from connectors.redact import sanitize_url

_SECRET = "Pass it as {env: NAME} in YAML or dg.EnvVar('NAME') in Python; never inline."  # noqa: S105 (a hint on how to pass secrets, not a secret)


class NoAuth(dg.Config):
    type: Literal["none"] = Field("none", description="No credentials.")


class ApiKeyAuth(dg.Config):
    type: Literal["api_key"] = Field("api_key", description="A static key in a header or query parameter.")
    name: str = Field("X-API-Key", description="Header or query parameter name.")
    location: Literal["header", "query"] = Field("header", description="Where the key is sent.")
    key: str = Field(description=f"The API key. {_SECRET}")


class BearerAuth(dg.Config):
    type: Literal["bearer"] = Field("bearer", description="`Authorization: Bearer <token>`.")
    token: str = Field(description=f"The token. {_SECRET}")


class BasicAuth(dg.Config):
    type: Literal["basic"] = Field("basic", description="HTTP basic authentication.")
    username: str = Field(description="User name.")
    password: str = Field(description=f"Password. {_SECRET}")


class OAuth2ClientCredentials(dg.Config):
    type: Literal["oauth2_client_credentials"] = Field(
        "oauth2_client_credentials", description="OAuth2 client credentials grant; tokens refresh on expiry."
    )
    token_url: str = Field(description="Token endpoint URL (absolute).")
    client_id: str = Field(description="Client id.")
    client_secret: str = Field(description=f"Client secret. {_SECRET}")
    scope: str | None = Field(None, description="Space-separated scopes to request.")


AuthConfig = NoAuth | ApiKeyAuth | BearerAuth | BasicAuth | OAuth2ClientCredentials
AUTH_TYPES: dict[str, type[dg.Config]] = {
    "none": NoAuth, "api_key": ApiKeyAuth, "bearer": BearerAuth, "basic": BasicAuth,
    "oauth2_client_credentials": OAuth2ClientCredentials,
}


def auth_from_dict(value: Any) -> Any:
    """Spec configs arrive as {type: ..., ...} dicts; Dagster wants the union member itself."""
    if isinstance(value, dict) and "type" in value:
        kind = AUTH_TYPES.get(value["type"])
        if kind is None:
            raise ValueError(f"unknown auth type {value['type']!r}; allowed: {', '.join(AUTH_TYPES)}")
        return kind(**value)
    return value


class Authenticator:
    """Builds the session for an auth config and knows how to renew credentials after a 401."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.secret_params: tuple[str, ...] = ()

    def session(self) -> requests.Session:
        config = self.config
        if isinstance(config, OAuth2ClientCredentials):
            from authlib.integrations.requests_client import OAuth2Session

            # authlib re-runs the client-credentials grant by itself when the token has expired. leeway=0: a
            # token that expires in flight gets a 401, which HttpClient answers by fetching a new one once.
            session: requests.Session = OAuth2Session(
                client_id=config.client_id, client_secret=config.client_secret, scope=config.scope,
                token_endpoint=config.token_url, grant_type="client_credentials", leeway=0,
            )
            return session
        session = requests.Session()
        if isinstance(config, ApiKeyAuth):
            if config.location == "header":
                session.headers[config.name] = config.key
            else:
                session.params = {config.name: config.key}
                self.secret_params = (config.name,)
        elif isinstance(config, BearerAuth):
            session.headers["Authorization"] = f"Bearer {config.token}"
        elif isinstance(config, BasicAuth):
            session.auth = (config.username, config.password)
        return session

    @property
    def renewable(self) -> bool:
        return isinstance(self.config, OAuth2ClientCredentials)

    def ensure_token(self, session: requests.Session, *, force: bool = False) -> None:
        """Fetch an OAuth2 token if there is none yet (or `force`, after the API answered 401)."""
        config = self.config
        if not isinstance(config, OAuth2ClientCredentials):
            return
        if getattr(session, "token", None) and not force:
            return
        from authlib.common.errors import AuthlibBaseError

        try:
            session.fetch_token(config.token_url, grant_type="client_credentials")  # type: ignore[attr-defined]
        except (AuthlibBaseError, requests.RequestException, ValueError) as exc:
            raise AuthError(
                f"POST {sanitize_url(config.token_url)}: could not obtain an OAuth2 token: {exc}",
                url=sanitize_url(config.token_url), status=None, attempts=1,
            ) from exc
