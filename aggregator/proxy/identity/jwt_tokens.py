"""Bearer JWTs from the company's identity provider, for machine clients (CI systems, services).

Besides the proxy's own API tokens, a client may send an OAuth 2.0 access token that the OpenID Connect provider
issued as a JWT (RFC 9068): its signature is checked against the provider's published keys (JWKS, from
discovery), and its issuer, audience (`AGGREGATOR_OIDC_AUDIENCE`) and expiry must match. Its groups map to a role
with the same `AGGREGATOR_OIDC_ROLE_MAP` as single sign-on (highest wins, none = refused); an optional claim
(`AGGREGATOR_OIDC_SCOPE_CLAIM`) narrows the role to the pipelines it lists. Only asymmetric algorithms are
accepted: the keys are public, so an HMAC or `none` token would be forgeable by anyone who reads the JWKS.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from aggregator.proxy.config import OidcSettings
from aggregator.proxy.policy.rbac import Principal, Role

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
# Keys are cached this long; an unknown key id refetches them at most once per REFETCH_S (key rotation).
KEYS_TTL_S, REFETCH_S, LEEWAY_S = 600.0, 60.0, 30


class JwtRejected(Exception):
    """The JWT is not one this platform accepts; the message says why (never the token)."""


def looks_like_jwt(credentials: str) -> bool:
    """Compact JWS: three base64url parts. The proxy's own API tokens never contain a dot."""
    return credentials.count(".") == 2 and credentials.startswith("eyJ")


class JwtVerifier:
    def __init__(self, cfg: OidcSettings) -> None:
        if not cfg.audience:
            raise ValueError("JWT access tokens need AGGREGATOR_OIDC_AUDIENCE")
        self.cfg, self.audience = cfg, cfg.audience
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _key_set(self, refresh: bool = False) -> KeySet:
        async with self._lock:
            age = time.monotonic() - self._fetched_at
            if self._keys is None or age > KEYS_TTL_S or (refresh and age > REFETCH_S):
                async with httpx.AsyncClient(timeout=10) as client:
                    discovery = (await client.get(f"{self.cfg.issuer.rstrip('/')}/.well-known/openid-configuration"))
                    discovery.raise_for_status()
                    keys = await client.get(discovery.json()["jwks_uri"])
                    keys.raise_for_status()
                self._keys = KeySet.import_key_set(keys.json())
                self._fetched_at = time.monotonic()
            return self._keys

    async def principal(self, token: str) -> Principal:
        try:
            keys = await self._key_set()
        except (httpx.HTTPError, ValueError, KeyError, JoseError) as exc:
            raise JwtRejected(f"the identity provider's keys could not be read ({type(exc).__name__})") from None
        try:
            decoded = self._decode(token, keys)
        except JwtRejected as first:
            if "no key" not in str(first):
                raise
            decoded = self._decode(token, await self._key_set(refresh=True))  # the provider rotated its keys
        return self._to_principal(decoded)

    def _decode(self, token: str, keys: KeySet) -> dict[str, Any]:
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except ValueError as exc:  # joserfc: unknown kid
            raise JwtRejected(f"no key of the identity provider verifies this token ({exc})") from None
        except JoseError as exc:
            raise JwtRejected(f"invalid token: {exc.error}") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_S, iss={"essential": True, "value": self.cfg.issuer},
                                         exp={"essential": True}, sub={"essential": True})
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise JwtRejected(f"invalid token: {exc.error} ({exc.description or ''})".rstrip(" ()")) from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise JwtRejected("invalid token: not issued for this platform (aud)")
        return claims

    def _to_principal(self, claims: dict[str, Any]) -> Principal:
        groups = claims.get(self.cfg.groups_claim) or []
        groups = groups if isinstance(groups, list) else [groups]
        roles = [Role.parse(self.cfg.role_map[g]) for g in groups if isinstance(g, str) and g in self.cfg.role_map]
        if not roles:
            raise JwtRejected(f"the token's {self.cfg.groups_claim!r} grant no role on this platform")
        scope: frozenset[str] | None = None
        if self.cfg.scope_claim and self.cfg.scope_claim in claims:
            listed = claims[self.cfg.scope_claim]
            listed = listed.split() if isinstance(listed, str) else listed
            if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
                raise JwtRejected(f"the token's {self.cfg.scope_claim!r} claim is not a list of pipelines")
            scope = frozenset(listed)
        subject = str(claims.get("client_id") or claims.get("azp") or claims["sub"])[:200]
        # A bearer token like the proxy's own (`via="token"`: no cookie, so no CSRF exposure), told apart by its id.
        return Principal(user=subject, role=max(roles), scope=scope, via="token", token_id=f"jwt:{subject}")


_VERIFIERS: dict[str, JwtVerifier] = {}


def verifier_for(cfg: OidcSettings) -> JwtVerifier:
    """One verifier (and one cached key set) per provider configuration in this process."""
    key = cfg.model_dump_json()
    if key not in _VERIFIERS:
        _VERIFIERS[key] = JwtVerifier(cfg)
    return _VERIFIERS[key]
