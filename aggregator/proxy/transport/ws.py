"""WebSocket relay for GraphQL subscriptions (the `graphql-ws` subprotocol the Dagster UI uses).

Every `start` frame is parsed and authorized like an HTTP request, and a canonical frame built from the
parsed values is sent on; frames the proxy does not understand close the connection. Mutations are not
accepted over the socket (the UI never sends them there, and launches must carry the `user` tag).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.graphql_ops import GraphQLBusy, GraphQLRejected
from aggregator.proxy.identity.frontdoor import admission, identify_again, still_grants
from aggregator.proxy.policy import bounded_json
from aggregator.proxy.policy.authz import authorize_document
from aggregator.proxy.policy.rbac import Principal
from aggregator.proxy.refusals import BEARER_REALM, refusal_body
from aggregator.proxy.transport.asgi import Receive, Scope, Send
from aggregator.proxy.transport.forward import upstream_headers, upstream_path

log = logging.getLogger(__name__)

PROTOCOL = "graphql-ws"
RECHECK_S = 10.0  # how often an open connection's credentials are identified again
PASS_THROUGH = {"connection_init", "stop", "connection_terminate"}


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    """401/403 as a real HTTP response where the server supports it; otherwise a close before accept."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(refusal_body(status, reason)).encode()
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", BEARER_REALM.encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403, "reason": reason})


async def _deny(services: Services, ctx: RequestContext, send: Send, status: int, reason: str) -> None:
    await services.record_decision(ctx, event="websocket", decision="deny", operation="websocket upgrade",
                                   reason=reason, status=status)
    await _refuse(ctx.scope, send, status, reason)


async def handle(services: Services, ctx: RequestContext, receive: Receive, send: Send) -> None:
    scope, app = ctx.scope, services
    request_id, ip = ctx.request_id, ctx.ip
    if (await receive())["type"] != "websocket.connect":
        return
    if ctx.rel != "/graphql":
        return await _deny(services, ctx, send, 403, "no WebSocket endpoint here")
    refused = admission(ctx, app.settings, public=False)  # the front door's one rule, as for HTTP
    if refused is not None or ctx.principal is None:
        return await _deny(services, ctx, send, refused.status if refused else 401,
                           refused.reason if refused else "sign in or send a bearer token")
    principal = ctx.principal
    if PROTOCOL not in scope.get("subprotocols", []):
        return await _deny(services, ctx, send, 403, f"only the {PROTOCOL} subprotocol is relayed")
    base = app.settings.upstream.replace("http", "ws", 1)
    headers = [(k.decode(), v.decode("latin-1")) for k, v in upstream_headers(scope, principal, request_id, ip)
               if k not in (b"origin",)]
    try:
        upstream = await connect(
            base + upstream_path(scope), subprotocols=[PROTOCOL], additional_headers=headers,  # type: ignore[list-item]
            max_size=None, compression=None, open_timeout=10)
    except (OSError, websockets.WebSocketException) as exc:
        log.warning("upstream websocket failed: %s request_id=%s", type(exc).__name__, request_id)
        return await send({"type": "websocket.close", "code": 1011})
    await send({"type": "websocket.accept", "subprotocol": PROTOCOL})
    await services.record_decision(ctx, event="websocket", decision="allow", operation="websocket upgrade",
                                   audit=False)
    async with upstream:
        to_client = asyncio.create_task(_upstream_to_client(upstream, send))
        from_client = asyncio.create_task(_client_to_upstream(services, ctx, principal, receive, send, upstream))
        watch = asyncio.create_task(_until_credentials_change(services, ctx, principal))
        try:
            await asyncio.wait({from_client, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and not from_client.done():
                # Nothing more may reach the client: stop relaying before the close frame.
                for task in (to_client, from_client):
                    task.cancel()
                await asyncio.gather(to_client, from_client, return_exceptions=True)
                await services.record_decision(ctx, event="websocket", decision="deny", operation="subscription",
                                               reason="credentials ended or grant changed", status=403)
                await send({"type": "websocket.close", "code": 4403, "reason": "credentials ended or changed"})
            else:
                from_client.result()  # its exception, if any
        finally:
            for task in (to_client, from_client, watch):
                task.cancel()
            await asyncio.gather(to_client, from_client, watch, return_exceptions=True)


async def _until_credentials_change(services: Services, ctx: RequestContext, principal: Principal) -> None:
    """Return once the connection's credentials no longer give `principal`'s grant: a subscription streams
    for as long as the socket is open, so a sign-out, a disabled user, a revoked token or a changed grant must
    end it (identified again every RECHECK_S, as the front door does), not only refuse the next operation."""
    while True:
        await asyncio.sleep(RECHECK_S)  # the upgrade has just identified it
        if not await still_grants(services, ctx, principal):
            return


async def _upstream_to_client(upstream: ClientConnection, send: Send) -> None:
    try:
        async for message in upstream:
            key = "text" if isinstance(message, str) else "bytes"
            await send({"type": "websocket.send", key: message})
    except websockets.ConnectionClosed:
        pass
    await send({"type": "websocket.close", "code": 1000})


async def _client_to_upstream(services: Services, ctx: RequestContext, principal: Principal, receive: Receive,
                              send: Send, upstream: ClientConnection) -> None:
    request_id = ctx.request_id
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            frame = bounded_json.loads(message.get("text") or message.get("bytes") or b"")
            canonical, error = await _canonical_frame(services, ctx, principal, frame)
        except (ValueError, TypeError, KeyError) as exc:
            log.info("websocket frame rejected user=%s request_id=%s: %s", principal.user, request_id, exc)
            await send({"type": "websocket.close", "code": 4400, "reason": "unparseable frame"})
            return
        if error is not None:
            await send({"type": "websocket.send", "text": json.dumps(error)})
            continue
        await upstream.send(json.dumps(canonical))


async def _canonical_frame(app: Services, ctx: RequestContext, principal: Principal,
                           frame: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise TypeError("frame is not a graphql-ws message")
    kind, op_id = frame["type"], frame.get("id")
    if op_id is not None and not isinstance(op_id, str | int):
        raise TypeError("bad id")
    if kind in PASS_THROUGH:
        return {k: v for k, v in {"type": kind, "id": op_id, "payload": frame.get("payload")}.items()
                if v is not None}, None
    if kind != "start":
        raise ValueError(f"unknown frame type {kind!r}")
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        raise TypeError("start without payload")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise TypeError("variables must be an object")
    # The session may have ended (logout, disable) since the upgrade: check again on every operation, with the
    # same identification the front door ran at the upgrade.
    current = await identify_again(app, ctx)
    try:
        parsed = await app.inspector.inspect_async(payload.get("query"))
        if "mutation" in parsed.operation_types:
            decision_ok, missing = False, "POST-json"
        else:
            d = await authorize_document(principal, parsed, variables, app.inspector, app.resolver)
            decision_ok, missing = d.decision.allowed, d.decision.missing or "?"
    except GraphQLBusy:
        return None, {"type": "error", "id": op_id, "payload": [{"message": "busy: retry shortly"}]}
    except GraphQLRejected as exc:
        await app.record_decision(ctx, event="websocket", decision="deny", operation="subscription",
                                  reason=str(exc), status=400)
        return None, {"type": "error", "id": op_id, "payload": [{"message": str(exc)}]}
    if not decision_ok or current is None:
        missing = missing if current is not None else "session (signed out or expired)"
        await app.record_decision(ctx, event="websocket", decision="deny", operation=parsed.label(),
                                  reason=f"missing {missing}", status=403)
        return None, {"type": "error", "id": op_id, "payload": [{"message": f"forbidden: missing {missing}"}]}
    name = payload.get("operation_name") or payload.get("operationName")
    return {"type": "start", "id": op_id, "payload": {
        "query": parsed.query, "variables": variables or {}, "operation_name": name if isinstance(name, str) else None,
    }}, None
