"""Stream HTTP requests to the webserver and responses back, with headers the proxy controls."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx

from aggregator.proxy.policy.rbac import Principal
from aggregator.proxy.refusals import refusal_body
from aggregator.proxy.transport.asgi import Receive, Scope, Send
from aggregator.proxy.transport.paths import encode_path
from aggregator.proxy.transport.upstream import UpstreamError, UpstreamPool

log = logging.getLogger(__name__)

HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"host", b"content-length",
}
# Identity and origin headers a client could forge; the proxy sets its own.
STRIPPED_REQUEST = HOP_BY_HOP | {
    b"authorization", b"cookie", b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto",
    b"x-real-ip", b"remote-user", b"x-remote-user", b"x-user", b"x-request-id",
    b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol",
}


class BodyTooLarge(Exception):
    pass


def upstream_headers(scope: Scope, principal: Principal | None, request_id: str, client_ip: str,
                     content_type: bytes | None = None) -> list[tuple[bytes, bytes]]:
    headers = [
        (k, v) for k, v in scope["headers"]
        if k not in STRIPPED_REQUEST and not k.startswith(b"x-aggregator-")
        and not (content_type is not None and k == b"content-type")
    ]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    host = next((v for k, v in scope["headers"] if k == b"host"), b"")
    headers += [
        (b"x-request-id", request_id.encode()),
        (b"x-forwarded-for", client_ip.encode()),
        (b"x-forwarded-proto", scope.get("scheme", "http").encode()),
        (b"x-forwarded-host", host),
    ]
    if principal is not None:
        headers += [(b"x-aggregator-user", principal.user.encode()), (b"x-aggregator-role", principal.role.name.encode())]
    return headers


async def stream_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """Yield the client's body as it arrives; stop the request once it passes `limit` bytes."""
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLarge
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int) -> bytes:
    return b"".join([chunk async for chunk in stream_body(receive, limit)])


def upstream_path(scope: Scope) -> str:
    """The path the proxy normalized and authorized (paths.normalize_scope), re-encoded; never the client's
    bytes."""
    return encode_path(scope["path"])


async def _bad_gateway(send: Send, response_headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(refusal_body(502, "the Dagster webserver behind the proxy is not answering")).encode()
    await send({"type": "http.response.start", "status": 502, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *response_headers]})
    await send({"type": "http.response.body", "body": body})


async def _relay(send: Send, status: int, raw_headers: list[tuple[bytes, bytes]], chunks: AsyncIterator[bytes],
                 response_headers: list[tuple[bytes, bytes]], capture: bool) -> bytes | None:
    names = {k for k, _ in response_headers}
    out_headers = [(k.lower(), v) for k, v in raw_headers
                   if k.lower() not in HOP_BY_HOP - {b"content-length"} and k.lower() not in names]
    await send({"type": "http.response.start", "status": status, "headers": out_headers + response_headers})
    captured: list[bytes] = []
    async for chunk in chunks:
        if capture:
            captured.append(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    return b"".join(captured) if capture else None


async def forward_http(
    client: httpx.AsyncClient, upstream: str, scope: Scope, send: Send, *, method: str, query_string: bytes,
    headers: list[tuple[bytes, bytes]], content: bytes | AsyncIterator[bytes] | None,
    response_headers: list[tuple[bytes, bytes]], capture: bool = False, pool: UpstreamPool | None = None,
    idempotent: bool | None = None,
) -> bytes | None:
    """Forward one request; stream the response. With `capture`, also return the body (small responses only).

    Buffered or empty request bodies take the lean keep-alive client (`pool`); streamed uploads take httpx."""
    target = upstream_path(scope) + (("?" + query_string.decode("latin-1")) if query_string else "")
    if pool is not None and not isinstance(content, AsyncIterator):
        try:
            up = await pool.request(method, target, headers, content, idempotent=idempotent)
        except UpstreamError as exc:
            log.warning("upstream unreachable: %s %s: %s", method, scope["path"], exc)
            await _bad_gateway(send, response_headers)
            return None
        try:
            return await _relay(send, up.status, up.headers, up.iter_body(), response_headers, capture)
        finally:
            up.release()
    request = client.build_request(method, upstream + target, headers=headers, content=content)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        log.warning("upstream unreachable: %s %s: %s", method, scope["path"], type(exc).__name__)
        await _bad_gateway(send, response_headers)
        return None
    try:
        return await _relay(send, response.status_code, list(response.headers.raw), response.aiter_raw(),
                            response_headers, capture)
    finally:
        await response.aclose()
