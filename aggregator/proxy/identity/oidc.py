"""OpenID Connect sign-in: authorization code flow with PKCE, state and nonce, verified ID token.

The ID token's signature (provider JWKS), issuer, audience, expiry and nonce are checked before any claim is
used; the user's groups are mapped to a role (`OidcSettings.role_map`, highest wins, none = no access).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from anyio import to_thread
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.identity.authenticate import forbidden
from aggregator.proxy.identity.login import safe_next, set_session_cookie
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.store import User
from aggregator.proxy.transport.gateway import own_origin

log = logging.getLogger(__name__)

STATE_COOKIE = "aggregator_oidc_state"
PENDING_TTL_S = 600


@dataclass
class _Outcome:
    username: str | None = None
    role: str | None = None
    reason: str | None = None


class OidcClient:
    def __init__(self, services: Services) -> None:
        if services.settings.oidc is None:
            raise ValueError("OidcClient needs AGGREGATOR_OIDC_ISSUER and the other AGGREGATOR_OIDC_* settings")
        self.app, self.cfg = services, services.settings.oidc
        self._discovery: dict[str, Any] | None = None
        self._pending: dict[str, tuple[float, str, str, str]] = {}  # state -> (created, nonce, verifier, next)

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.get(url)
                resp.raise_for_status()
                self._discovery = dict(resp.json())
        return self._discovery

    def redirect_uri(self, request: Request) -> str:
        return own_origin(request.scope, self.app.settings) + self.app.settings.path_prefix + "/_auth/oidc/callback"

    async def login(self, request: Request) -> Response:
        meta = await self.discovery()
        now = time.monotonic()
        self._pending = {k: v for k, v in self._pending.items() if now - v[0] < PENDING_TTL_S}
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        self._pending[state] = (now, nonce, verifier, safe_next(request.query_params.get("next"), self.app.settings))
        query = urlencode({
            "response_type": "code", "client_id": self.cfg.client_id, "redirect_uri": self.redirect_uri(request),
            "scope": "openid profile email " + self.cfg.groups_claim, "state": state, "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
        })
        response = RedirectResponse(f"{meta['authorization_endpoint']}?{query}", status_code=303)
        # Binds the flow to this browser: a callback carrying someone else's state is refused (login CSRF).
        response.set_cookie(STATE_COOKIE, state, max_age=PENDING_TTL_S, httponly=True, samesite="lax",
                            secure=self.app.settings.https, path=self.app.settings.path_prefix + "/_auth/oidc/")
        return response

    async def route(self, rel: str, request: Request, ctx: RequestContext) -> Response:
        if rel == "/_auth/oidc/login" and request.method == "GET":
            return await self.login(request)
        if rel == "/_auth/oidc/callback" and request.method == "GET":
            return await self.callback(request, ctx)
        return Response(status_code=404)

    async def callback(self, request: Request, ctx: RequestContext) -> Response:
        state = request.query_params.get("state", "")
        pending = self._pending.pop(state, None)
        record = _Outcome()

        async def write(decision: str = "deny") -> None:
            await self.app.record_decision(ctx, event="login_oidc", decision=decision,
                                           operation="GET /_auth/oidc/callback", reason=record.reason,
                                           username=record.username, role=record.role)
        if not state or pending is None or request.cookies.get(STATE_COOKIE) != state:
            record.reason = "unknown, replayed or foreign state"
            await write()
            return forbidden("oidc-state", "sign-in flow not started from this browser; start again")
        _, nonce, verifier, next_url = pending
        if "error" in request.query_params or "code" not in request.query_params:
            record.reason = f"provider error {request.query_params.get('error', 'no code')}"
            await write()
            return forbidden("oidc", "the identity provider did not sign you in")
        try:
            claims = await self._exchange(request, request.query_params["code"], verifier, nonce)
        except (httpx.HTTPError, JoseError, ValueError, KeyError) as exc:
            record.reason = f"token exchange or ID token check failed: {type(exc).__name__}: {exc}"[:300]
            await write()
            return forbidden("oidc", "the sign-in could not be verified")
        username = str(claims.get("preferred_username") or claims["sub"])
        record.username = username
        groups = claims.get(self.cfg.groups_claim) or []
        roles = [Role.parse(self.cfg.role_map[g]) for g in groups if isinstance(g, str) and g in self.cfg.role_map]
        if not roles:
            record.reason = f"no mapped group in {groups!r}"
            await write()
            return forbidden("role", "none of your groups grants access to this platform")
        role = max(roles)
        existing = await to_thread.run_sync(self.app.store.get_user, username)
        if existing is not None and (existing.source != "oidc" or existing.disabled):
            # A local account of the same name is not taken over by whoever controls that IdP username.
            record.reason = "name belongs to a local or disabled account"
            await write()
            return forbidden("account", "this account cannot sign in with SSO")
        if existing is None:
            await to_thread.run_sync(lambda: self.app.store.add_user(username, None, role, source="oidc"))
        elif existing.role != role:
            # The IdP's groups decide an SSO user's role, even when that demotes the last local admin.
            await to_thread.run_sync(lambda: self.app.store.set_role(username, role, None, keep_admin=False))
        user = User(username, role, None, False, "oidc")
        token = await to_thread.run_sync(self.app.store.create_session, user, self.app.settings.session_absolute_s,
                                         "oidc")
        record.role = role.name
        await write("allow")
        response = RedirectResponse(next_url, status_code=303)
        set_session_cookie(response, self.app.settings, token)
        response.delete_cookie(STATE_COOKIE, path=self.app.settings.path_prefix + "/_auth/oidc/")
        return response

    async def _exchange(self, request: Request, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        meta = await self.discovery()
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.post(meta["token_endpoint"], data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri(request),
                "code_verifier": verifier,
            }, auth=(self.cfg.client_id, self.cfg.client_secret.get_secret_value()))
            if resp.status_code != 200:
                # The provider's `error` code (e.g. invalid_grant) is safe to record; the body may not be.
                error = resp.json().get("error") if "json" in resp.headers.get("content-type", "") else None
                raise ValueError(f"token endpoint answered {resp.status_code} ({error})")
            id_token = resp.json()["id_token"]
            keys = KeySet.import_key_set((await client.get(meta["jwks_uri"])).raise_for_status().json())
        token = jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"])
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": self.cfg.issuer}, aud={"essential": True, "value": self.cfg.client_id},
            nonce={"essential": True, "value": nonce}, exp={"essential": True}, sub={"essential": True},
        ).validate(token.claims)
        return dict(token.claims)
