"""The proxy as one pure ASGI app: authenticate, authorize, make canonical, forward, audit."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from aggregator.proxy import ws
from aggregator.proxy.audit import AuditLog, AuditQuery, AuditRecord
from aggregator.proxy.auth import AuthFailed, LoginHandler, authenticate, forbidden, header, unauthenticated
from aggregator.proxy.authz import authorize_document
from aggregator.proxy.config import ProxySettings
from aggregator.proxy.forward import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    forward_http,
    read_body,
    stream_body,
    upstream_headers,
)
from aggregator.proxy.gateway import client_ip, origin_allowed, response_headers, same_origin
from aggregator.proxy.graphql_ops import GraphQLInspector, GraphQLRejected, dagster_schema
from aggregator.proxy.launch_tags import stamp_user
from aggregator.proxy.ratelimit import TokenBuckets
from aggregator.proxy.rbac import ADMIN_ROLE, REPORT_ROLE, REPORT_ROUTES, Principal, Role
from aggregator.proxy.store import Store
from aggregator.proxy.targets import ScopeResolver
from aggregator.proxy.upstream import UpstreamPool

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD")
PUBLIC_PATHS = ("/server_info",)  # health checks; the body is only Dagster's version numbers
_REPORT = re.compile(r"^/(" + "|".join(REPORT_ROUTES) + r")/(?P<key>.+)$")
_RUN_ID = re.compile(r'"runId"\s*:\s*"([0-9a-f-]{36})"')


def _query_params(scope: Scope) -> list[tuple[str, str]]:
    """Decoded the way Starlette (hence Dagster) decodes them: percent-escapes in names and values."""
    return parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)


class ProxyApp:
    def __init__(self, settings: ProxySettings, store: Store, audit: AuditLog,
                 inspector: GraphQLInspector | None = None) -> None:
        self.settings, self.store, self.audit = settings, store, audit
        self.inspector = inspector or GraphQLInspector(dagster_schema())
        self.login = LoginHandler(settings, store, audit)
        self.buckets = TokenBuckets(settings.graphql_rate_per_s, settings.graphql_burst)
        self._client: httpx.AsyncClient | None = None
        self._pool: UpstreamPool | None = None
        self._resolver: ScopeResolver | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # No read timeout: subscriptions and log downloads stay open as long as the client wants.
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), follow_redirects=False,
                                             limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
            self._resolver = ScopeResolver(self._client, f"{self.settings.upstream}{self.settings.path_prefix}/graphql")
        return self._client

    @property
    def pool(self) -> UpstreamPool | None:
        """The lean keep-alive client for plain-http upstreams (the usual local webserver)."""
        if self._pool is None and self.settings.upstream.startswith("http://"):
            self._pool = UpstreamPool(self.settings.upstream)
        return self._pool

    @property
    def resolver(self) -> ScopeResolver:
        _ = self.client
        assert self._resolver is not None
        return self._resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] not in ("http", "websocket"):
            return
        request_id = uuid.uuid4().hex
        ip = client_ip(scope, self.settings)
        extra = response_headers(scope, self.settings, request_id)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                names = {k for k, _ in extra}
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", []) if k not in names]
                           + extra}
            await send(message)

        if scope["type"] == "websocket":
            return await ws.handle(self, scope, receive, send_with_headers, request_id, ip)
        try:
            await self._http(scope, receive, send_with_headers, request_id, ip)
        except BodyTooLarge:
            await PlainTextResponse("request body too large", status_code=413)(scope, receive, send_with_headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                if self._pool is not None:
                    self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def relative_path(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        prefix = self.settings.path_prefix
        if not prefix:
            return path
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix):] or "/"
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str, ip: str) -> None:
        method, rel = scope["method"], self.relative_path(scope)
        if method == "OPTIONS":
            # CORS preflight, answered here; never forwarded.
            ok = origin_allowed(scope, self.settings)
            return await Response(status_code=204 if ok else 403)(scope, receive, send)
        if rel is not None and rel.startswith("/_auth/"):
            return await self._own_route(rel, scope, receive, send, request_id, ip)
        if rel in PUBLIC_PATHS and method in SAFE_METHODS:
            return await self._forward(scope, receive, send, None, request_id, ip)
        try:
            principal = await authenticate(scope, self.settings, self.store)
        except AuthFailed as exc:
            await self._audit(AuditRecord(event="token", source_ip=ip, request_id=request_id, decision="deny",
                                          reason=str(exc), operation=f"{method} {scope['path']}"))
            return await unauthenticated(scope, self.settings, str(exc))(scope, receive, send)
        if principal is None:
            return await unauthenticated(scope, self.settings, "sign in or send a bearer token")(scope, receive, send)
        if principal.via != "token" and method not in SAFE_METHODS and not same_origin(scope, self.settings):
            return await self._deny(scope, receive, send, principal, request_id, ip, f"{method} {scope['path']}",
                                    "same-origin", "cross-site write with a session cookie (CSRF)")
        if rel == "/graphql":
            if method in SAFE_METHODS and "query" not in dict(_query_params(scope)):
                # GraphiQL's page: nothing executes. The query string is dropped so Dagster sees exactly
                # the "no query" the proxy saw, whatever encoding tricks it held.
                return await self._forward(scope, receive, send, principal, request_id, ip, query_string=b"")
            return await self._graphql(scope, receive, send, principal, request_id, ip)
        report = _REPORT.match(rel or "")
        if report and method == "POST":
            return await self._report(scope, receive, send, principal, request_id, ip, report.group("key"))
        if method in SAFE_METHODS:
            return await self._forward(scope, receive, send, principal, request_id, ip)
        # Deny by default: a write endpoint the proxy does not know is a write it cannot authorize.
        return await self._deny(scope, receive, send, principal, request_id, ip, f"{method} {scope['path']}",
                                "known-endpoint", "unknown write endpoint")

    async def _forward(self, scope: Scope, receive: Receive, send: Send, principal: Principal | None,
                       request_id: str, ip: str, query_string: bytes | None = None) -> None:
        content = stream_body(receive, self.settings.max_body_bytes) if scope["method"] not in SAFE_METHODS else None
        await forward_http(self.client, self.settings.upstream, scope, send, method=scope["method"],
                           query_string=scope["query_string"] if query_string is None else query_string,
                           headers=upstream_headers(scope, principal, request_id, ip),
                           content=content, response_headers=[], pool=self.pool)

    async def _audit(self, record: AuditRecord) -> None:
        await to_thread.run_sync(self.audit.record, record)

    async def _deny(self, scope: Scope, receive: Receive, send: Send, principal: Principal, request_id: str,
                    ip: str, operation: str, missing: str, reason: str,
                    targets: dict[str, list[str]] | None = None) -> None:
        log.info("decision=deny user=%s role=%s operation=%s missing=%s request_id=%s", principal.user,
                 principal.role.name, operation, missing, request_id)
        await self._audit(AuditRecord(event="mutation", username=principal.user, role=principal.role.name,
                                      source_ip=ip, request_id=request_id, operation=operation,
                                      targets=targets or {}, decision="deny", reason=reason))
        await forbidden(missing, reason)(scope, receive, send)

    async def _graphql(self, scope: Scope, receive: Receive, send: Send, principal: Principal, request_id: str,
                       ip: str) -> None:
        method = scope["method"]
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if method == "POST":
            body = await read_body(receive, self.settings.max_graphql_bytes)
        try:
            # Mirrors where Dagster would look, but only the values parsed here are forwarded.
            if method == "POST" and content_type == "application/json":
                data = json.loads(body)
            elif method == "POST" and content_type == "application/graphql":
                data = {"query": body.decode()}
            else:
                data = dict(_query_params(scope))
            if not isinstance(data, dict):
                raise GraphQLRejected("GraphQL request must be one JSON object (no batches)")
            variables = data.get("variables")
            if isinstance(variables, str):
                variables = json.loads(variables) if variables else None
            if variables is not None and not isinstance(variables, dict):
                raise GraphQLRejected("GraphQL variables must be a JSON object")
            operation_name = data.get("operationName")
            if operation_name is not None and not isinstance(operation_name, str):
                raise GraphQLRejected("operationName must be a string")
            parsed = self.inspector.inspect(data.get("query"))
            decision = await authorize_document(principal, parsed, variables, self.inspector, self.resolver)
        except (GraphQLRejected, ValueError, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, GraphQLRejected) else "request is not valid JSON/UTF-8"
            log.info("decision=deny user=%s reason=invalid request_id=%s", principal.user, request_id)
            return await JSONResponse({"errors": [{"message": reason}]}, status_code=400)(scope, receive, send)
        operation = parsed.label()
        is_write = "mutation" in parsed.operation_types
        if not decision.decision.allowed:
            return await self._deny(scope, receive, send, principal, request_id, ip, operation,
                                    decision.decision.missing or "?", decision.decision.reason, decision.targets)
        if is_write and (method != "POST" or content_type != "application/json"):
            # JSON-only mutations: a form or text/plain POST is a "simple" cross-site request without preflight.
            return await self._deny(scope, receive, send, principal, request_id, ip, operation, "POST-json",
                                    "mutations must be POSTed as application/json", decision.targets)
        wait = self.buckets.take(f"{principal.via}:{principal.token_id or principal.user}")
        if wait:
            return await JSONResponse({"error": "rate limited"}, status_code=429,
                                      headers={"retry-after": str(max(1, int(wait)))})(scope, receive, send)
        if not is_write:
            # Reads are the bulk of the traffic: their decision line is at debug level.
            log.debug("decision=allow user=%s role=%s operation=%s request_id=%s", principal.user,
                      principal.role.name, operation, request_id)
        query: str = parsed.query
        if is_write:
            rewritten = stamp_user(self.inspector, parsed, variables, principal.user)
            if rewritten is not None:
                query, variables = rewritten
        canonical = json.dumps({"query": query, "variables": variables or {}, "operationName": operation_name})
        headers = upstream_headers(scope, principal, request_id, ip, content_type=b"application/json")
        if is_write:
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"]  # read run ids from plain JSON
        captured = await forward_http(
            self.client, self.settings.upstream, scope, send, method="POST", query_string=b"", headers=headers,
            content=canonical.encode(), response_headers=[(b"cache-control", b"no-store")], capture=is_write,
            pool=self.pool)
        if is_write:
            run_ids = sorted(set(_RUN_ID.findall((captured or b"").decode("utf-8", "replace"))))
            log.info("decision=allow user=%s role=%s operation=%s request_id=%s runs=%s", principal.user,
                     principal.role.name, operation, request_id, ",".join(run_ids))
            await self._audit(AuditRecord(event="mutation", username=principal.user, role=principal.role.name,
                                          source_ip=ip, request_id=request_id, operation=operation,
                                          targets=decision.targets, decision="allow",
                                          run_id=",".join(run_ids) or None))

    async def _report(self, scope: Scope, receive: Receive, send: Send, principal: Principal, request_id: str,
                      ip: str, asset_key: str) -> None:
        operation = f"POST {scope['path']}"
        targets = {"assets": [asset_key]}
        if not principal.may(REPORT_ROLE):
            return await self._deny(scope, receive, send, principal, request_id, ip, operation,
                                    f"{REPORT_ROLE.name}:report_asset_events", "reporting events needs editor",
                                    targets)
        if principal.scope is not None and await self.resolver.out_of_scope(targets, principal.scope):
            return await self._deny(scope, receive, send, principal, request_id, ip, operation,
                                    f"{REPORT_ROLE.name}:report_asset_events on assets:{asset_key}",
                                    "asset outside the grant", targets)
        # The asset key in the path wins over body and query string in Dagster; the query string is dropped
        # anyway so the only key Dagster can see is the one authorized here.
        await forward_http(self.client, self.settings.upstream, scope, send, method="POST", query_string=b"",
                           headers=upstream_headers(scope, principal, request_id, ip),
                           content=stream_body(receive, self.settings.max_body_bytes),
                           response_headers=[(b"cache-control", b"no-store")])
        log.info("decision=allow user=%s role=%s operation=%s request_id=%s", principal.user, principal.role.name,
                 operation, request_id)
        await self._audit(AuditRecord(event="write", username=principal.user, role=principal.role.name,
                                      source_ip=ip, request_id=request_id, operation=operation, targets=targets,
                                      decision="allow"))

    async def _own_route(self, rel: str, scope: Scope, receive: Receive, send: Send, request_id: str,
                         ip: str) -> None:
        request = Request(scope, receive)
        response: Response
        if rel in ("/_auth/login", "/_auth/logout") and request.method == "POST" and not same_origin(scope, self.settings):
            response = forbidden("same-origin", "cross-site sign-in/out form (CSRF)")
        elif rel == "/_auth/login" and request.method in ("GET", "POST"):
            response = await self.login.login(request, ip, request_id)
        elif rel == "/_auth/logout" and request.method == "POST":
            response = await self.login.logout(request, ip, request_id)
        elif rel.startswith("/_auth/oidc/") and self.settings.oidc is not None:
            from aggregator.proxy.oidc import oidc_route

            response = await oidc_route(self, rel, request, ip, request_id)
        elif rel in ("/_auth/me", "/_auth/api/audit") and request.method == "GET":
            response = await self._api(rel, request)
        else:
            response = JSONResponse({"error": "not found"}, status_code=404)
        await response(scope, receive, send)

    async def _api(self, rel: str, request: Request) -> Response:
        try:
            principal = await authenticate(request.scope, self.settings, self.store)
        except AuthFailed as exc:
            return unauthenticated(request.scope, self.settings, str(exc))
        if principal is None:
            return unauthenticated(request.scope, self.settings, "sign in or send a bearer token")
        headers = {"cache-control": "no-store"}
        if rel == "/_auth/me":
            return JSONResponse({"user": principal.user, "role": principal.role.name, "via": principal.via,
                                 "scope": sorted(principal.scope) if principal.scope is not None else None},
                                headers=headers)
        if principal.role < ADMIN_ROLE or principal.scope is not None:
            return forbidden(f"{Role.admin.name}:audit", "reading the audit log needs an unscoped admin")
        try:
            query = AuditQuery.model_validate(dict(request.query_params))
        except ValueError:
            return JSONResponse({"error": "bad filter; allowed: username, event, decision, operation, since, "
                                 "until, limit"}, status_code=400)
        records = await to_thread.run_sync(self.audit.query, query)
        return JSONResponse([r.model_dump() for r in records], headers=headers)
