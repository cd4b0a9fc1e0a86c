"""Gateway protections shared by every request: origin checks (CSRF), CORS, security headers, client IP."""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.transport.asgi import Scope
from aggregator.proxy.transport.asgi import header as _header

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def relative_path(scope: Scope, settings: ProxySettings) -> str | None:
    """The (normalized) path below the path prefix, or None when the request is outside it."""
    path: str = scope["path"]
    prefix = settings.path_prefix
    if not prefix:
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):] or "/"
    return None


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def own_origins(scope: Scope, settings: ProxySettings) -> tuple[str, ...]:
    """The origins whose pages may use a session cookie for writes.

    With AGGREGATOR_PROXY_PUBLIC_ORIGIN: exactly that one. Without it, never the Host header (a DNS-rebinding
    page controls it): only the address the proxy listens on, and its loopback aliases when that is loopback.
    A proxy listening on all interfaces without a public origin therefore refuses cookie writes from browsers
    until the operator sets one."""
    if settings.public_origin:
        public = urlsplit(settings.public_origin.rstrip("/"))
        if public.hostname not in ("localhost", "127.0.0.1", "::1"):
            return (settings.public_origin.rstrip("/"),)
        # A loopback origin: its aliases name the same machine and port.
        scheme, host, port = public.scheme or "http", "127.0.0.1", public.port
    else:
        raw_scheme = str(scope.get("scheme", "http"))
        scheme = {"ws": "http", "wss": "https"}.get(raw_scheme, raw_scheme)
        server = scope.get("server")
        if not server:
            return ()
        host, port = str(server[0]), server[1]
    # The listening host first: own_origin() builds absolute URLs (the OIDC redirect URI) from it.
    hosts = (host, *(h for h in LOOPBACK_NAMES if h != host)) if host in ("127.0.0.1", "::1", "localhost") \
        else (host,)
    if _unspecified(host):
        return ()
    default = {"http": 80, "https": 443}.get(scheme)
    return tuple(f"{scheme}://{h}" + ("" if port in (None, default) else f":{port}") for h in hosts)


def own_origin(scope: Scope, settings: ProxySettings) -> str:
    """The origin used to build absolute URLs (OIDC redirect URI)."""
    origins = own_origins(scope, settings)
    if origins:
        return origins[0]
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return f"{scheme}://{_header(scope, b'host') or 'localhost'}"


def same_origin(scope: Scope, settings: ProxySettings) -> bool:
    """True when a cookie-authenticated write or WebSocket upgrade comes from our own pages.

    Browsers send Origin on every cross-origin request and on same-origin POSTs and WebSocket upgrades;
    Sec-Fetch-Site is the fallback. A request with neither is not from a browser page, so no ambient cookie
    was borrowed, but we still refuse it: scripts should use bearer tokens."""
    origin = _header(scope, b"origin")
    if origin is not None:
        return origin.rstrip("/") in own_origins(scope, settings)
    return _header(scope, b"sec-fetch-site") in ("same-origin", "none")


def origin_allowed(scope: Scope, settings: ProxySettings) -> bool:
    origin = _header(scope, b"origin")
    return origin is not None and origin in settings.cors_origins


@functools.lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _trusted(address: str, cidrs: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(cidrs))


def client_ip(scope: Scope, settings: ProxySettings) -> str:
    """The client's address. X-Forwarded-For only counts on a connection from a trusted proxy, and then the
    right-most entry that is not itself a trusted proxy is the client: entries left of it were written by the
    client and prove nothing."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not settings.trusted_proxies or not _trusted(peer, settings.trusted_proxies):
        return peer
    hops = [h.strip() for raw in (v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for")
            for h in raw.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, settings.trusted_proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return "invalid-forwarded-for"
    return hops[0] if hops else peer


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
