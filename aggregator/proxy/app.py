"""The proxy as one pure ASGI app: normalize, authenticate, authorize, forward, record.

Every request gets its path normalized once (paths.py) before anything routes on it; every decision goes
through `Services.record_decision` (one log line + one audit row) and every refusal has the shape of
refusals.py.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from aggregator.logs.json_format import correlation_id
from aggregator.metrics.proxy import observe_http
from aggregator.proxy.api.app import ApiApp
from aggregator.proxy.api.router import Documented
from aggregator.proxy.api.state import ApiLimits
from aggregator.proxy.config import ProxySettings
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.graphql_ops import GraphQLInspector, dagster_schema
from aggregator.proxy.identity.account import FAVICON_PATHS, account_page, favicon
from aggregator.proxy.identity.authenticate import unauthenticated
from aggregator.proxy.identity.frontdoor import Refusal, admission, identify_request
from aggregator.proxy.identity.login import LoginHandler
from aggregator.proxy.identity.oidc import OidcClient
from aggregator.proxy.policy.catalog import ScopeResolver
from aggregator.proxy.policy.rbac import REPORT_ROLE, REPORT_ROUTES, Role
from aggregator.proxy.refusals import refusal
from aggregator.proxy.routes.console import CONSOLE_CSP, ConsoleFiles, is_console
from aggregator.proxy.routes.graphql import GraphQLRoute, query_params
from aggregator.proxy.routes.ops import DagsterOps
from aggregator.proxy.storage.audit import AuditLog
from aggregator.proxy.storage.rate_windows import SharedRateWindows
from aggregator.proxy.storage.store import Store
from aggregator.proxy.transport import ws
from aggregator.proxy.transport.asgi import Receive, Scope, Send
from aggregator.proxy.transport.forward import (
    BodyTooLarge,
    forward_http,
    stream_body,
    upstream_headers,
)
from aggregator.proxy.transport.gateway import (
    client_ip,
    origin_allowed,
    relative_path,
    response_headers,
)
from aggregator.proxy.transport.paths import PathRejected, normalize_scope
from aggregator.proxy.transport.ratelimit import TokenBuckets
from aggregator.proxy.transport.upstream import UpstreamPool
from aggregator.settings import Settings

SAFE_METHODS = ("GET", "HEAD")
# Routes anyone may reach besides the typed public ones (/healthz, /api/openapi.json); the front door still
# applies its CSRF rule to the sign-in/out forms. Dagster's /server_info is not among them: it is forwarded
# like any UI read, for a principal; health checks use the proxy's own /healthz.
_PUBLIC_AUTH = {"/_auth/login": ("GET", "POST"), "/_auth/logout": ("GET", "POST")}

# Endpoints served outside the typed router, for the OpenAPI document and the access matrix (role None: public).
FORWARDED: tuple[Documented, ...] = (
    Documented("GET", "/_auth/login", "Sign-in page", None, "HTML form of the local sign-in."),
    Documented("POST", "/_auth/login", "Sign in", None, "Form post (same origin only); sets the session cookie."),
    Documented("GET", "/_auth/logout", "Account and sign-out page", None,
               "Who is signed in (user, role, pipelines) with a Sign out button; open it in the browser."),
    Documented("POST", "/_auth/logout", "Sign out", None, "Form post (same origin only); ends the session."),
    Documented("GET", "/favicon.ico", "Icon", None, "The proxy's own icon (also /favicon.svg); never forwarded."),
    Documented("GET", "/_auth/oidc/login", "Sign in with SSO", None, "Redirect to the identity provider."),
    Documented("GET", "/_auth/oidc/callback", "SSO callback", None, "The identity provider's redirect back."),
    Documented("POST", "/graphql", "Dagster GraphQL", Role.viewer,
               "Queries need viewer; each mutation needs its role (docs/security.md), within a scoped grant's "
               "pipelines."),
    Documented("GET", "/graphql", "Dagster GraphQL (GET) and GraphiQL; WebSocket subscriptions (graphql-ws)",
               Role.viewer, "Queries and subscriptions only; the WebSocket upgrade needs the same origin with a "
                            "session cookie."),
    Documented("POST", "/report_asset_materialization/{asset_key}", "Report an asset event", REPORT_ROLE,
               "Also /report_asset_check and /report_asset_observation; within the grant's assets."),
    Documented("GET", "/console/{page}", "The Console (web app)", Role.viewer,
               "The Console's pages and hashed assets (docs/console.md); a browser without a session is sent "
               "to the sign-in page and back. What each page may do is the API's decision."),
    Documented("GET", "/{ui_path}", "Dagster UI and its static files (also /server_info)", Role.viewer,
               "Every other GET is forwarded to the Dagster webserver for a principal; other methods are refused."),
)
_REPORT = re.compile(r"^/(" + "|".join(REPORT_ROUTES) + r")/(?P<key>.+)$")
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
        if store.engine.dialect.name != "sqlite":
            # Replicas are possible only on a shared database: their requests then count together.
            self.buckets.shared = SharedRateWindows(store.engine, settings.graphql_rate_per_s, settings.graphql_burst,
                                                    settings.graphql_window_s)
        # The lean keep-alive client for plain-http upstreams (the usual local webserver).
        self.pool = UpstreamPool(settings.upstream) if settings.upstream.startswith("http://") else None
        self.graphql = GraphQLRoute(self.services, self.client, self.pool, self.buckets)
        self.ops = DagsterOps(self.services, self.client, os.environ.get("DAGSTER_HOME"))
        # The management API (docs/api.md); `platform` says where specs and the warehouse are (default: env).
        self.api = ApiApp(self.services, self.client, platform, api_limits, self.ops, FORWARDED)
        self.console = ConsoleFiles(settings)

    @property
    def inspector(self) -> GraphQLInspector:
        return self.services.inspector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] not in ("http", "websocket"):
            return
        ctx = RequestContext(scope, uuid.uuid4().hex, client_ip(scope, self.settings))
        # every log line of this request (JSON format) carries its id; the task's context ends with it
        correlation_id.set(ctx.request_id)
        extra = response_headers(scope, self.settings, ctx.request_id)

        started, status = time.perf_counter(), [0]

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status[0] = int(message.get("status", 0))
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
        if is_console(ctx.rel):
            # The Console's pages get its own full policy in place of the frame-ancestors-only one.
            extra[:] = [(k, CONSOLE_CSP.encode() if k == b"content-security-policy" else v) for k, v in extra]
        # The one authentication of this request, for every path and transport (identity/frontdoor.py).
        await identify_request(self.services, ctx)
        if scope["type"] == "websocket":
            return await ws.handle(self.services, ctx, receive, send_with_headers)
        try:
            await self._http(ctx, receive, send_with_headers)
        except BodyTooLarge:
            await self.services.record_decision(ctx, event="request", decision="deny", status=413,
                                                operation=f"{ctx.method} {ctx.path}", reason="body too large")
            await refusal(413, "request body too large")(scope, receive, send_with_headers)
        finally:
            observe_http(ctx.rel, ctx.method, status[0], time.perf_counter() - started, ctx.route)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.api.close()
                await self.client.aclose()
                if self.pool is not None:
                    self.pool.close()
                self.login.close()
                self.ops.close()
                self.services.close()
                # Requests are over: close the database's pooled connections rather than leave them to GC.
                self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        scope, method, rel = ctx.scope, ctx.method, ctx.rel
        if method == "OPTIONS":
            # CORS preflight, answered here; never forwarded.
            ok = origin_allowed(scope, self.settings)
            return await Response(status_code=204 if ok else 403)(scope, receive, send)
        if rel in FAVICON_PATHS and method in SAFE_METHODS:
            # Public and not audited: browsers ask for it on every page, the sign-in page included.
            return await favicon()(scope, receive, send)
        refused = admission(ctx, self.settings, public=is_form(rel, method) or self.api.is_public(method, rel))
        if refused is not None and refused.status == 403 and rel == "/graphql":
            # Decided here; the GraphQL route only answers it, so the audit row names the operation carried.
            return await self.graphql(ctx, receive, send, refused=refused)
        if refused is not None:
            return await self._turn_away(ctx, receive, send, refused)
        if self.api.owns(rel):
            return await self.api(ctx, receive, send)
        if rel is not None and rel.startswith("/_auth/"):
            return await self._own_route(ctx, receive, send)
        operation = f"{method} {ctx.path}"
        if rel == "/graphql":
            if method in SAFE_METHODS and "query" not in dict(query_params(scope)):
                # GraphiQL's page: nothing executes. The query string is dropped so Dagster sees exactly
                # the "no query" the proxy saw, whatever encoding tricks it held.
                return await self._forward(ctx, receive, send, query_string=b"")
            return await self.graphql(ctx, receive, send)
        report = _REPORT.match(rel or "")
        if report and method == "POST":
            return await self._report(ctx, receive, send, report.group("key"))
        if method in SAFE_METHODS and is_console(rel):
            return await self.console(ctx.scope, receive, send, rel or "")
        if method in SAFE_METHODS:
            return await self._forward(ctx, receive, send)
        # Deny by default: a write endpoint the proxy does not know is a write it cannot authorize.
        return await self.services.refuse(ctx, receive, send, 403, "request", operation, "unknown write endpoint",
                                          "known-endpoint")

    async def _turn_away(self, ctx: RequestContext, receive: Receive, send: Send, refused: Refusal) -> None:
        """The front door's answer: 401 (browsers go to the sign-in page) or 403 naming what is missing."""
        operation = f"{ctx.method} {ctx.path}"
        if refused.status == 401:
            await self.services.record_decision(ctx, event=refused.event, decision="deny", operation=operation,
                                                reason=refused.reason, status=401)
            return await unauthenticated(ctx.scope, self.settings, refused.reason)(ctx.scope, receive, send)
        await self.services.refuse(ctx, receive, send, refused.status, refused.event, operation, refused.reason,
                                   refused.missing)

    async def _forward(self, ctx: RequestContext, receive: Receive, send: Send,
                       query_string: bytes | None = None) -> None:
        scope = ctx.scope
        content = stream_body(receive, self.settings.max_body_bytes) if scope["method"] not in SAFE_METHODS else None
        await forward_http(self.client, self.settings.upstream, scope, send, method=scope["method"],
                           query_string=scope["query_string"] if query_string is None else query_string,
                           headers=upstream_headers(scope, ctx.principal, ctx.request_id, ctx.ip),
                           content=content, response_headers=[], pool=self.pool)

    async def _report(self, ctx: RequestContext, receive: Receive, send: Send, asset_key: str) -> None:
        scope, principal = ctx.scope, ctx.principal
        if principal is None:  # routed here only after identify(); never forward for nobody
            raise RuntimeError("GraphQL/report route reached without a principal")
        operation = f"POST {ctx.path}"
        targets = {"assets": [asset_key]}
        if not principal.may(REPORT_ROLE):
            return await self.services.refuse(ctx, receive, send, 403, "write", operation, "reporting events needs editor",
                                              f"{REPORT_ROLE.name}:report_asset_events", targets)
        if principal.scope is not None and await self.services.resolver.out_of_scope(targets, principal.scope):
            return await self.services.refuse(ctx, receive, send, 403, "write", operation, "asset outside the grant",
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
        if rel == "/_auth/login" and request.method in ("GET", "POST"):
            response = await self.login.login(request, ctx)
        elif rel == "/_auth/logout" and request.method == "GET":
            response = account_page(self.settings, ctx.principal)
        elif rel == "/_auth/logout" and request.method == "POST":
            response = await self.login.logout(request, ctx)
        elif rel.startswith("/_auth/oidc/") and self.oidc is not None:
            response = await self.oidc.route(rel, request, ctx)
        else:
            response = refusal(404, f"no {request.method} {rel} in the proxy's own routes")
        await response(scope, receive, send)


def is_form(rel: str | None, method: str) -> bool:
    """The sign-in/out forms and OIDC redirects: public (the front door still applies CSRF to the forms)."""
    if rel is None:
        return False
    return method in _PUBLIC_AUTH.get(rel, ()) or rel.startswith("/_auth/oidc/")
