"""Authentication: who is asking (session cookie or bearer token), and the 401/403 answers.

401 means "who are you?" (browsers are sent to the login page, API clients get WWW-Authenticate); 403 means
"not allowed" and names the missing permission. Neither is a status the Dagster UI retries.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.responses import JSONResponse, RedirectResponse, Response

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.identity.jwt_tokens import JwtRejected, looks_like_jwt, verifier_for
from aggregator.proxy.policy.rbac import Principal
from aggregator.proxy.refusals import BEARER_REALM, refusal
from aggregator.proxy.storage.store import Store
from aggregator.proxy.transport.asgi import header

log = logging.getLogger(__name__)

__all__ = ["BEARER_REALM", "AuthFailed", "Identity", "authenticate", "forbidden", "header", "identify",
           "session_cookie", "unauthenticated"]


class AuthFailed(Exception):
    """Credentials were presented and are wrong (bad/expired/revoked token): 401, no fallback to cookies."""


def session_cookie(scope: MutableMapping[str, Any], settings: ProxySettings) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is just "no session"
        return None
    morsel = cookie.get(settings.cookie_name)
    return morsel.value if morsel else None


async def authenticate(scope: MutableMapping[str, Any], settings: ProxySettings, store: Store) -> Principal | None:
    authz = header(scope, b"authorization")
    if authz is not None:
        scheme, _, credentials = authz.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise AuthFailed("only `Authorization: Bearer <token>` is accepted")
        if settings.oidc is not None and settings.oidc.audience and looks_like_jwt(credentials.strip()):
            try:
                return await verifier_for(settings.oidc).principal(credentials.strip())
            except JwtRejected as exc:
                raise AuthFailed(str(exc)) from None
        hit, principal = store.cached_token(credentials.strip())
        if not hit:
            principal = await to_thread.run_sync(store.token_principal, credentials.strip())
        if principal is None:
            raise AuthFailed("token unknown, expired or revoked")
        return principal
    token = session_cookie(scope, settings)
    if token:
        hit, principal = store.cached_session(token)
        if hit:
            return principal
        return await to_thread.run_sync(store.session_principal, token, settings.session_idle_s)
    return None


NO_CREDENTIALS = "sign in or send a bearer token"


@dataclass(frozen=True)
class Identity:
    """Who is asking, or why nobody is: `event` is "token" for wrong credentials (no fallback to the
    cookie), "unauthenticated" when none were sent."""

    principal: Principal | None
    event: str = ""
    reason: str = ""


async def identify(scope: MutableMapping[str, Any], settings: ProxySettings, store: Store) -> Identity:
    try:
        principal = await authenticate(scope, settings, store)
    except AuthFailed as exc:
        return Identity(None, "token", str(exc))
    if principal is None:
        return Identity(None, "unauthenticated", NO_CREDENTIALS)
    return Identity(principal)


def wants_html(scope: MutableMapping[str, Any]) -> bool:
    return scope["method"] in ("GET", "HEAD") and "text/html" in (header(scope, b"accept") or "")


def unauthenticated(scope: MutableMapping[str, Any], settings: ProxySettings, reason: str) -> Response:
    if wants_html(scope) and header(scope, b"authorization") is None:
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else "")
        return RedirectResponse(f"{settings.path_prefix}/_auth/login?next={quote(target)}", status_code=303)
    return refusal(401, reason)


def forbidden(missing: str, reason: str) -> JSONResponse:
    return refusal(403, reason, missing)
