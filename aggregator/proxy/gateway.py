"""Gateway protections shared by every request: origin checks (CSRF), CORS, security headers, client IP."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from aggregator.proxy.config import ProxySettings

Scope = MutableMapping[str, Any]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def own_origin(scope: Scope, settings: ProxySettings) -> str:
    if settings.public_origin:
        return settings.public_origin.rstrip("/")
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return f"{scheme}://{_header(scope, b'host') or ''}"


def same_origin(scope: Scope, settings: ProxySettings) -> bool:
    """True when a cookie-authenticated write or WebSocket upgrade comes from our own pages.

    Browsers send Origin on every cross-origin request and on same-origin POSTs and WebSocket upgrades;
    Sec-Fetch-Site is the fallback. A request with neither is not from a browser page, so no ambient cookie
    was borrowed, but we still refuse it: scripts should use bearer tokens."""
    origin = _header(scope, b"origin")
    if origin is not None:
        return origin.rstrip("/") == own_origin(scope, settings)
    return _header(scope, b"sec-fetch-site") in ("same-origin", "none")


def origin_allowed(scope: Scope, settings: ProxySettings) -> bool:
    origin = _header(scope, b"origin")
    return origin is not None and origin in settings.cors_origins


def client_ip(scope: Scope, settings: ProxySettings) -> str:
    if settings.trust_forwarded_for:
        forwarded = _header(scope, b"x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def response_headers(scope: Scope, settings: ProxySettings, request_id: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-request-id", request_id.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]
    if scope["type"] == "http":
        # A second CSP header is enforced alongside Dagster's own (both must pass), so this only adds
        # clickjacking protection without loosening what Dagster sends.
        headers.append((b"content-security-policy", b"frame-ancestors 'none'"))
    if settings.https:
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    if origin_allowed(scope, settings):
        origin = (_header(scope, b"origin") or "").encode()
        headers += [
            (b"access-control-allow-origin", origin),
            (b"vary", b"Origin"),
            # Bearer tokens only: the allow-list does not extend cookie sessions to other sites.
            (b"access-control-allow-headers", b"authorization, content-type"),
            (b"access-control-allow-methods", b"GET, POST"),
            (b"access-control-max-age", b"600"),
        ]
    return headers
