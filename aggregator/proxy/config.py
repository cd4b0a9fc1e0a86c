"""Proxy settings, read from the environment (and CLI flags) once and validated."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class OidcSettings(BaseModel):
    """An OpenID Connect provider for single sign-on (authorization code + PKCE)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(description="AGGREGATOR_OIDC_ISSUER: issuer URL; discovery is read from it.")
    client_id: str = Field(description="AGGREGATOR_OIDC_CLIENT_ID.")
    client_secret: SecretStr = Field(description="AGGREGATOR_OIDC_CLIENT_SECRET.")
    groups_claim: str = Field("groups", description="Claim holding the user's groups.")
    role_map: dict[str, str] = Field(
        default_factory=dict,
        description="AGGREGATOR_OIDC_ROLE_MAP: group -> role, e.g. `data-admins=admin,analysts=viewer`. "
        "The highest role of the user's groups wins; no matching group means no access.",
    )
    audience: str | None = Field(
        None, description="AGGREGATOR_OIDC_AUDIENCE: set to accept the provider's JWT access tokens as bearer "
        "tokens (machine clients); a token's `aud` must contain it.")
    scope_claim: str | None = Field(
        None, description="AGGREGATOR_OIDC_SCOPE_CLAIM: claim of a JWT access token listing the pipelines its role "
        "is narrowed to (space-separated or a list); absent: unscoped.")


class ProxySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    upstream: str = Field(description="Base URL of the dagster-webserver, e.g. http://127.0.0.1:3001.")
    path_prefix: str = Field("", description="Dagster's --path-prefix (e.g. /dagster); the proxy serves the same.")
    wait_for_location: bool = Field(
        False, description="AGGREGATOR_PROXY_WAIT_FOR_LOCATION=1: at start, keep the starting page until every code "
        "location has loaded (or failed for good), not only until the webserver answers. `aggregator dev` sets it: "
        "it starts the webserver together with the code server, so the webserver answers before the code loaded.")
    db_url: str = Field(description="AGGREGATOR_PROXY_DB_URL: SQLAlchemy URL of users/sessions/tokens/audit.")
    public_origin: str | None = Field(
        None, description="AGGREGATOR_PROXY_PUBLIC_ORIGIN: scheme://host[:port] browsers use. Enables HTTPS "
        "cookie settings and HSTS when https. Without it only the address the proxy listens on is its own "
        "origin (the Host header is never trusted for the CSRF check).",
    )
    cors_origins: tuple[str, ...] = Field((), description="AGGREGATOR_PROXY_CORS_ORIGINS: comma-separated.")
    session_idle_s: float = Field(3600, gt=0, description="A session unused this long ends.")
    session_absolute_s: float = Field(12 * 3600, gt=0, description="A session ends this long after login.")
    graphql_rate_per_s: float = Field(
        50, gt=0, description="AGGREGATOR_PROXY_GRAPHQL_RATE: sustained GraphQL requests/s per user or token.")
    graphql_burst: int = Field(200, gt=0, description="AGGREGATOR_PROXY_GRAPHQL_BURST: burst per user or token.")
    graphql_window_s: float = Field(
        10, gt=0, description="AGGREGATOR_PROXY_GRAPHQL_WINDOW_S: with a PostgreSQL proxy database (replicas), "
        "each user or token may send burst + rate x window GraphQL requests per window over all replicas.")
    login_failures_per_user: int = Field(
        5, gt=0, description="Failed logins per (user, source address) before that pair waits, doubling per "
        "further failure. Never blocks the same user from another address.")
    login_failures_per_account: int = Field(
        20, gt=0, description="Failed logins per user over all addresses before every attempt on the account "
        "is delayed (progressively, at most 10 s): slows distributed guessing without locking the user out.")
    login_failures_per_ip: int = Field(20, gt=0, description="Failed logins per source IP per window.")
    login_window_s: float = Field(900, gt=0, description="Window of the login failure counters, seconds.")
    login_hash_workers: int = Field(
        2, gt=0, description="Threads verifying passwords (argon2id, 64 MiB each); separate from all others.")
    login_hash_queue: int = Field(
        4, ge=0, description="Sign-ins that may wait for a hashing thread; more are answered 429 at once.")
    max_graphql_bytes: int = Field(1 << 20, gt=0, description="GraphQL bodies are parsed, so they are capped.")
    max_body_bytes: int = Field(16 << 20, gt=0, description="Cap on any other request body (streamed).")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="AGGREGATOR_TRUSTED_PROXIES: comma-separated CIDRs of load balancers/ingresses. "
        "X-Forwarded-For is honoured only on connections from these; the right-most address not in them is the "
        "client (used by login limits and the audit). Empty: the TCP peer is the client.",
    )
    oidc: OidcSettings | None = None

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError(f"path_prefix {value!r} must start with '/' (e.g. /dagster)")
        return value

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"upstream {value!r} must be an http(s) URL, e.g. http://127.0.0.1:3001")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"AGGREGATOR_TRUSTED_PROXIES: {cidr!r} is not a CIDR (e.g. 10.0.0.0/8)") from exc
        return value

    @property
    def https(self) -> bool:
        return bool(self.public_origin and self.public_origin.startswith("https://"))

    @property
    def cookie_name(self) -> str:
        # __Host- binds the cookie to this exact origin (Secure, Path=/, no Domain): browsers enforce it.
        return "__Host-aggregator_session" if self.https else "aggregator_session"


def _role_map(raw: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
    return {group.strip(): role.strip() for group, role in pairs}


def proxy_db_url(home: Path, environ: Mapping[str, str] | None = None) -> str:
    """AGGREGATOR_PROXY_DB_URL, else SQLite under AGGREGATOR_HOME (what the CLI and the proxy both open)."""
    env = os.environ if environ is None else environ
    return env.get("AGGREGATOR_PROXY_DB_URL") or f"sqlite:///{home / 'proxy.db'}"


def load_proxy_settings(upstream: str, home: Path, path_prefix: str = "", environ: dict[str, str] | None = None,
                        **overrides: object) -> ProxySettings:
    env = os.environ if environ is None else environ
    oidc = None
    if env.get("AGGREGATOR_OIDC_ISSUER"):
        oidc = OidcSettings(
            issuer=env["AGGREGATOR_OIDC_ISSUER"], client_id=env.get("AGGREGATOR_OIDC_CLIENT_ID", ""),
            client_secret=SecretStr(env.get("AGGREGATOR_OIDC_CLIENT_SECRET", "")),
            groups_claim=env.get("AGGREGATOR_OIDC_GROUPS_CLAIM", "groups"),
            role_map=_role_map(env.get("AGGREGATOR_OIDC_ROLE_MAP", "")),
            audience=env.get("AGGREGATOR_OIDC_AUDIENCE") or None,
            scope_claim=env.get("AGGREGATOR_OIDC_SCOPE_CLAIM") or None,
        )
    values: dict[str, object] = {
        "upstream": upstream, "path_prefix": path_prefix,
        "wait_for_location": env.get("AGGREGATOR_PROXY_WAIT_FOR_LOCATION") == "1",
        "db_url": proxy_db_url(home, env),
        "public_origin": env.get("AGGREGATOR_PROXY_PUBLIC_ORIGIN") or None,
        "cors_origins": tuple(o.strip() for o in env.get("AGGREGATOR_PROXY_CORS_ORIGINS", "").split(",")
                              if o.strip()),
        "trusted_proxies": tuple(c.strip() for c in env.get("AGGREGATOR_TRUSTED_PROXIES", "").split(",")
                                 if c.strip()),
        "oidc": oidc,
    }
    for name, key in (("graphql_rate_per_s", "AGGREGATOR_PROXY_GRAPHQL_RATE"),
                      ("graphql_burst", "AGGREGATOR_PROXY_GRAPHQL_BURST"),
                      ("graphql_window_s", "AGGREGATOR_PROXY_GRAPHQL_WINDOW_S")):
        if env.get(key):
            values[name] = env[key]
    values.update(overrides)
    return ProxySettings.model_validate(values)
