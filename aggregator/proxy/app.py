"""The proxy as one pure ASGI app: normalize, authenticate, authorize, forward, record.

Every request gets its path normalized once (paths.py) before anything routes on it; every decision goes
through `Services.record_decision` (one log line + one audit row) and every refusal has the shape of
refusals.py.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.proxy.api.app import ApiApp
from aggregator.proxy.api.state import ApiLimits
from aggregator.proxy.authz import authorize_document
from aggregator.proxy.config import ProxySettings
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.graphql_ops import GraphQLBusy, GraphQLInspector, GraphQLRejected, dagster_schema
from aggregator.proxy.identity.authenticate import Identity, identify, unauthenticated
from aggregator.proxy.identity.login import LoginHandler
from aggregator.proxy.identity.oidc import OidcClient
from aggregator.proxy.launch_tags import stamp_user
from aggregator.proxy.rbac import ADMIN_ROLE, REPORT_ROLE, REPORT_ROUTES, Principal, Role
from aggregator.proxy.refusals import refusal
from aggregator.proxy.storage.audit import AuditLog, AuditQuery
from aggregator.proxy.storage.store import Store
from aggregator.proxy.targets import ScopeResolver
from aggregator.proxy.transport import ws
from aggregator.proxy.transport.asgi import Receive, Scope, Send, header
from aggregator.proxy.transport.forward import (
    BodyTooLarge,
    forward_http,
    read_body,
    stream_body,
    upstream_headers,
)
from aggregator.proxy.transport.gateway import (
    client_ip,
    origin_allowed,
    relative_path,
    response_headers,
    same_origin,
)
from aggregator.proxy.transport.paths import PathRejected, normalize_scope
from aggregator.proxy.transport.ratelimit import TokenBuckets
from aggregator.proxy.transport.upstream import UpstreamPool
from aggregator.settings import Settings

SAFE_METHODS = ("GET", "HEAD")
PUBLIC_PATHS = ("/server_info",)  # health checks; the body is only Dagster's version numbers
_REPORT = re.compile(r"^/(" + "|".join(REPORT_ROUTES) + r")/(?P<key>.+)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def run_ids(body: bytes | None) -> list[str]:
    """Run ids in a mutation's response: `runId` anywhere, and `id` of any `run` object. The UI's launch
    selects only `run { id pipelineName }` (a Run's `id` is its run id), so `runId` alone missed UI launches."""
    try:
        data = json.loads(body or b"{}").get("data")
    except (ValueError, AttributeError):
        return []
    found: set[str] = set()

    def walk(node: object, under_run: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and _UUID.match(value) and (key == "runId" or (under_run and key == "id")):
                    found.add(value)
                else:
                    walk(value, key == "run")
        elif isinstance(node, list):
            for item in node:
                walk(item, under_run)

    walk(data, False)
    return sorted(found)


def _query_params(scope: Scope) -> list[tuple[str, str]]:
    """Decoded the way Starlette (hence Dagster) decodes them: percent-escapes in names and values."""
    return parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)


class ProxyApp:
    def __init__(self, settings: ProxySettings, store: Store, audit: AuditLog,
                 inspector: GraphQLInspector | None = None, platform: Settings | None = None,
                 api_limits: ApiLimits | None = None) -> None:
        # No read timeout: subscriptions and log downloads stay open as long as the client wants.
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), follow_redirects=False,
                                        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        resolver = ScopeResolver(self.client, f"{settings.upstream}{settings.path_prefix}/graphql")
        self.services = Services(settings, store, audit, inspector or GraphQLInspector(dagster_schema()), resolver)
        self.settings, self.store, self.audit = settings, store, audit
        self.login = LoginHandler(self.services)
        self.oidc = OidcClient(self.services) if settings.oidc is not None else None
        self.buckets = TokenBuckets(settings.graphql_rate_per_s, settings.graphql_burst)
        # The lean keep-alive client for plain-http upstreams (the usual local webserver).
        self.pool = UpstreamPool(settings.upstream) if settings.upstream.startswith("http://") else None
        # The management API (docs/api.md); `platform` says where specs and the warehouse are (default: env).
        self.api = ApiApp(self.services, self.client, platform, api_limits)

    @property
    def inspector(self) -> GraphQLInspector:
        return self.services.inspector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] not in ("http", "websocket"):
            return
        ctx = RequestContext(scope, uuid.uuid4().hex, client_ip(scope, self.settings))
        extra = response_headers(scope, self.settings, ctx.request_id)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                names = {k for k, _ in extra}
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", []) if k not in names]
                           + extra}
            await send(message)

        raw_path = bytes(scope.get("raw_path") or b"").decode("latin-1")
        try:
            normalize_scope(scope)
        except PathRejected as exc:
            # The client's bytes only in the audit (repr, truncated): they are what an investigator needs.
            await self.services.record_decision(ctx, event="request", decision="deny", status=400,
                                                operation=f"{scope.get('method', 'WEBSOCKET')} {raw_path[:200]!r}",
                                                reason=str(exc))
            if scope["type"] == "websocket":
                return await send_with_headers({"type": "websocket.close", "code": 4400, "reason": str(exc)})
            return await refusal(400, str(exc))(scope, receive, send_with_headers)
        ctx.rel = relative_path(scope, self.settings)
        if scope["type"] == "websocket":
            return await ws.handle(self.services, ctx, receive, send_with_headers)
        try:
            await self._http(ctx, receive, send_with_headers)
        except BodyTooLarge:
            await self.services.record_decision(ctx, event="request", decision="deny", status=413,
                                                operation=f"{ctx.method} {ctx.path}", reason="body too large")
            await refusal(413, "request body too large")(scope, receive, send_with_headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.client.aclose()
                if self.pool is not None:
                    self.pool.close()
                self.login.close()
                self.services.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(self, ctx: RequestContext, receive: Receive, send: Send, status: int, event: str,
                      operation: str, reason: str, missing: str | None = None,
                      targets: dict[str, list[str]] | None = None, retry_after: float | None = None) -> None:
        """Record a refusal and answer it, always in the same shape."""
        await self.services.record_decision(ctx, event=event, decision="deny", operation=operation,
                                            reason=reason if missing is None else f"{reason} (missing {missing})",
                                            targets=targets, status=status)
        await refusal(status, reason, missing, retry_after)(ctx.scope, receive, send)

    async def _http(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        scope, method, rel = ctx.scope, ctx.method, ctx.rel
        if method == "OPTIONS":
            # CORS preflight, answered here; never forwarded.
            ok = origin_allowed(scope, self.settings)
            return await Response(status_code=204 if ok else 403)(scope, receive, send)
        if rel is not None and rel.startswith("/_auth/"):
            return await self._own_route(ctx, receive, send)
        if rel is not None and (rel == "/api" or rel.startswith("/api/")):
            return await self.api(ctx, receive, send)
        if rel in PUBLIC_PATHS and method in SAFE_METHODS:
            return await self._forward(ctx, receive, send)
        operation = f"{method} {ctx.path}"
        who = await identify(scope, self.settings, self.store)
        if who.principal is None:
            return await (await self._unidentified(ctx, who, operation))(scope, receive, send)
        ctx.principal = who.principal
        if rel == "/graphql":
            if method in SAFE_METHODS and "query" not in dict(_query_params(scope)):
                # GraphiQL's page: nothing executes. The query string is dropped so Dagster sees exactly
                # the "no query" the proxy saw, whatever encoding tricks it held.
                return await self._forward(ctx, receive, send, query_string=b"")
            return await self._graphql(ctx, receive, send)
        if not self._csrf_ok(ctx):
            return await self._refuse(ctx, receive, send, 403, "request", operation,
                                      "cross-site write with a session cookie (CSRF)", "same-origin")
        report = _REPORT.match(rel or "")
        if report and method == "POST":
            return await self._report(ctx, receive, send, report.group("key"))
        if method in SAFE_METHODS:
            return await self._forward(ctx, receive, send)
        # Deny by default: a write endpoint the proxy does not know is a write it cannot authorize.
        return await self._refuse(ctx, receive, send, 403, "request", operation, "unknown write endpoint",
                                  "known-endpoint")

    async def _unidentified(self, ctx: RequestContext, who: Identity, operation: str) -> Response:
        await self.services.record_decision(ctx, event=who.event, decision="deny", operation=operation,
                                            reason=who.reason, status=401)
        return unauthenticated(ctx.scope, self.settings, who.reason)

    def _csrf_ok(self, ctx: RequestContext) -> bool:
        principal = ctx.principal
        return (principal is None or principal.via == "token" or ctx.method in SAFE_METHODS
                or same_origin(ctx.scope, self.settings))

    async def _forward(self, ctx: RequestContext, receive: Receive, send: Send,
                       query_string: bytes | None = None) -> None:
        scope = ctx.scope
        content = stream_body(receive, self.settings.max_body_bytes) if scope["method"] not in SAFE_METHODS else None
        await forward_http(self.client, self.settings.upstream, scope, send, method=scope["method"],
                           query_string=scope["query_string"] if query_string is None else query_string,
                           headers=upstream_headers(scope, ctx.principal, ctx.request_id, ctx.ip),
                           content=content, response_headers=[], pool=self.pool)

    async def _graphql(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        scope, method, principal = ctx.scope, ctx.method, ctx.principal
        assert principal is not None
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if method == "POST":
            body = await read_body(receive, self.settings.max_graphql_bytes)
        operation = f"{method} {ctx.path}"
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
            parsed = await self.inspector.inspect_async(data.get("query"))
            operation = parsed.label()
            if not self._csrf_ok(ctx):
                return await self._refuse(ctx, receive, send, 403, "mutation", operation,
                                          "cross-site write with a session cookie (CSRF)", "same-origin")
            decision = await authorize_document(principal, parsed, variables, self.inspector,
                                                self.services.resolver)
        except GraphQLBusy:
            return await self._refuse(ctx, receive, send, 503, "graphql", operation,
                                      "the proxy is validating too many new GraphQL documents; retry shortly",
                                      retry_after=1.0)
        except (GraphQLRejected, ValueError, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, GraphQLRejected) else "request is not valid JSON/UTF-8"
            return await self._refuse(ctx, receive, send, 400, "graphql", operation, reason)
        is_write = "mutation" in parsed.operation_types
        if not decision.decision.allowed:
            return await self._refuse(ctx, receive, send, 403, "mutation", operation, decision.decision.reason,
                                      decision.decision.missing or "?", decision.targets)
        if is_write and (method != "POST" or content_type != "application/json"):
            # JSON-only mutations: a form or text/plain POST is a "simple" cross-site request without preflight.
            return await self._refuse(ctx, receive, send, 403, "mutation", operation,
                                      "mutations must be POSTed as application/json", "POST-json", decision.targets)
        wait = self.buckets.take(f"{principal.via}:{principal.token_id or principal.user}")
        if wait:
            return await self._refuse(ctx, receive, send, 429, "graphql", operation,
                                      "too many GraphQL requests; slow down", retry_after=wait)
        query: str = parsed.query
        if is_write:
            rewritten = stamp_user(self.inspector, parsed, variables, principal.user)
            if rewritten is not None:
                query, variables = rewritten
        else:
            await self.services.record_decision(ctx, event="query", decision="allow", operation=operation,
                                                audit=False)
        canonical = json.dumps({"query": query, "variables": variables or {}, "operationName": operation_name})
        headers = upstream_headers(scope, principal, ctx.request_id, ctx.ip, content_type=b"application/json")
        if is_write:
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"]  # read run ids from plain JSON
        captured = await forward_http(
            self.client, self.settings.upstream, scope, send, method="POST", query_string=b"", headers=headers,
            content=canonical.encode(), response_headers=[(b"cache-control", b"no-store")], capture=is_write,
            pool=self.pool, idempotent=not is_write)
        if is_write:
            await self.services.record_decision(ctx, event="mutation", decision="allow", operation=operation,
                                                targets=decision.targets, run_id=",".join(run_ids(captured)) or None)

    async def _report(self, ctx: RequestContext, receive: Receive, send: Send, asset_key: str) -> None:
        scope, principal = ctx.scope, ctx.principal
        assert principal is not None
        operation = f"POST {ctx.path}"
        targets = {"assets": [asset_key]}
        if not principal.may(REPORT_ROLE):
            return await self._refuse(ctx, receive, send, 403, "write", operation, "reporting events needs editor",
                                      f"{REPORT_ROLE.name}:report_asset_events", targets)
        if principal.scope is not None and await self.services.resolver.out_of_scope(targets, principal.scope):
            return await self._refuse(ctx, receive, send, 403, "write", operation, "asset outside the grant",
                                      f"{REPORT_ROLE.name}:report_asset_events on assets:{asset_key}", targets)
        # The asset key in the path wins over body and query string in Dagster; the query string is dropped
        # anyway so the only key Dagster can see is the one authorized here.
        await forward_http(self.client, self.settings.upstream, scope, send, method="POST", query_string=b"",
                           headers=upstream_headers(scope, principal, ctx.request_id, ctx.ip),
                           content=stream_body(receive, self.settings.max_body_bytes),
                           response_headers=[(b"cache-control", b"no-store")])
        await self.services.record_decision(ctx, event="write", decision="allow", operation=operation,
                                            targets=targets)

    async def _own_route(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        scope, rel = ctx.scope, ctx.rel or ""
        request = Request(scope, receive)
        response: Response
        if rel in ("/_auth/login", "/_auth/logout") and request.method == "POST" and not same_origin(scope, self.settings):
            return await self._refuse(ctx, receive, send, 403, "login", f"POST {rel}",
                                      "cross-site sign-in/out form (CSRF)", "same-origin")
        if rel == "/_auth/login" and request.method in ("GET", "POST"):
            response = await self.login.login(request, ctx)
        elif rel == "/_auth/logout" and request.method == "POST":
            response = await self.login.logout(request, ctx)
        elif rel.startswith("/_auth/oidc/") and self.oidc is not None:
            response = await self.oidc.route(rel, request, ctx)
        elif rel in ("/_auth/me", "/_auth/api/audit") and request.method == "GET":
            response = await self._api(rel, request, ctx)
        else:
            response = refusal(404, f"no {request.method} {rel} in the proxy's own routes")
        await response(scope, receive, send)

    async def _api(self, rel: str, request: Request, ctx: RequestContext) -> Response:
        who = await identify(request.scope, self.settings, self.store)
        if who.principal is None:
            return await self._unidentified(ctx, who, f"GET {rel}")
        principal = ctx.principal = who.principal
        headers = {"cache-control": "no-store"}
        if rel == "/_auth/me":
            return _me(principal, headers)
        if principal.role < ADMIN_ROLE or principal.scope is not None:
            await self.services.record_decision(ctx, event="audit_read", decision="deny", operation=f"GET {rel}",
                                                reason="needs an unscoped admin", status=403)
            return refusal(403, "reading the audit log needs an unscoped admin", f"{Role.admin.name}:audit")
        try:
            query = AuditQuery.model_validate(dict(request.query_params))
        except ValueError:
            return refusal(400, "bad filter; allowed: username, event, decision, operation, since, until, limit")
        records = await self.services.run_io(self.audit.query, query)
        return JSONResponse([r.model_dump() for r in records], headers=headers)


def _me(principal: Principal, headers: dict[str, str]) -> Response:
    return JSONResponse({"user": principal.user, "role": principal.role.name, "via": principal.via,
                         "scope": sorted(principal.scope) if principal.scope is not None else None},
                        headers=headers)
