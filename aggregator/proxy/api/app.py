"""The API's dispatcher, mounted by the proxy at `/api/`: authenticate, match, authorize, validate, audit.

Authentication and the CSRF rule are the proxy's front door (identity/frontdoor.py), applied before this
dispatcher runs: handlers read `ctx.principal`, they never authenticate. Refusals, the audit row and
the decision log line go through the same `Services.record_decision`. Every write (allowed or refused) is
in the audit log with event `api`; queries and exports too (`api_query`, `api_export`), other reads are
only logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.proxy.api import (
    admin_routes,
    alert_config_routes,
    alert_routes,
    connection_routes,
    connection_write_routes,
    data_routes,
    live_events,
    own_routes,
    pipeline_routes,
    preview_transform,
    run_routes,
    saved_routes,
    schema_routes,
    template_routes,
    upload_routes,
)
from aggregator.proxy.api.access import require_unscoped
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import (
    ApiRequest,
    Documented,
    Route,
    match,
    openapi_document,
    parse_json_body,
    parse_query,
    render,
)
from aggregator.proxy.api.spec_store import SpecStore
from aggregator.proxy.api.state import ApiLimits, ApiState
from aggregator.proxy.api.warehouse import Warehouse
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.routes.ops import DagsterOps
from aggregator.proxy.transport.asgi import Receive, Send
from aggregator.proxy.transport.forward import BodyTooLarge, read_body
from aggregator.settings import Settings, load_settings

log = logging.getLogger(__name__)

OPENAPI_PATH = "/api/openapi.json"


class ApiApp:
    def __init__(self, services: Services, client: httpx.AsyncClient, platform: Settings | None = None,
                 limits: ApiLimits | None = None, ops: DagsterOps | None = None,
                 documented: tuple[Documented, ...] = ()) -> None:
        platform = platform or load_settings()
        self.state = ApiState(services, client, platform, SpecStore(services.store.engine, platform),
                              Warehouse(platform.warehouse_url), limits or ApiLimits.from_env())
        ops = ops or DagsterOps(services, client)
        self.events = live_events.EventHub(ops, self.state.limits)
        self.routes: list[Route] = [*pipeline_routes.routes(self.state), *data_routes.routes(self.state),
                                    *saved_routes.routes(self.state),
                                    *connection_routes.routes(self.state),
                                    *connection_write_routes.routes(self.state), *schema_routes.routes(self.state),
                                    *upload_routes.routes(self.state),
                                    *template_routes.routes(self.state), *alert_routes.routes(self.state),
                                    *alert_config_routes.routes(self.state),
                                    *preview_transform.routes(self.state),
                                    *run_routes.routes(ops), *live_events.routes(ops, self.events, services),
                                    *own_routes.routes(services, lambda: self.routes),
                                    *admin_routes.routes(services),
                                    Route("GET", OPENAPI_PATH, self.openapi_json, "This document", public=True,
                                          media=("application/json",))]
        self.documented = documented
        self._openapi: dict[str, Any] | None = None

    async def close(self) -> None:
        """End the live event streams (shutdown)."""
        await self.events.close()

    @property
    def services(self) -> Services:
        return self.state.services

    def openapi(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = openapi_document(self.routes, self.services.settings.path_prefix, self.documented)
        return self._openapi

    async def openapi_json(self, req: ApiRequest) -> Response:
        """The OpenAPI document of every endpoint, with the role each needs; public, it holds no data."""
        return JSONResponse(self.openapi(), headers={"cache-control": "no-cache"})

    def owns(self, rel: str | None) -> bool:
        """True for `/api/*` and the proxy's own typed routes outside it (`/metrics`, `/_auth/me`, ...)."""
        if rel is None:
            return False
        return rel == "/api" or rel.startswith("/api/") or any(r.pattern.match(rel) for r in self.routes)

    def is_public(self, method: str, rel: str | None) -> bool:
        try:
            route, _ = match(self.routes, method, rel or "")
        except ApiError:
            return False
        return route.public

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        response = await self._respond(ctx, receive)
        await response(ctx.scope, receive, send)

    async def _respond(self, ctx: RequestContext, receive: Receive) -> Response:
        rel, method = ctx.rel or "", ctx.method
        operation = f"{method} {ctx.path}"
        route: Route | None = None
        try:
            route, params = match(self.routes, method, rel)
            ctx.route = route.path
            if route.public:
                # Public handlers never read the principal (there may be none): health check, this document.
                public = ApiRequest(ctx, Request(ctx.scope), None, params, None, None)  # type: ignore[arg-type]
                return render(await route.handler(public))
            principal = ctx.principal
            if principal is None:  # the front door (identity/frontdoor.py) answered 401 already
                raise RuntimeError(f"API route {operation} reached without a principal")
            operation = f"api:{route.operation_id} {ctx.path}"
            if not principal.may(route.role):
                raise ApiError(403, f"{route.operation_id} needs role {route.role.name}; {principal.user} has "
                               f"{principal.role.name}", f"{route.role.name}:{route.operation_id}")
            if route.unscoped:
                require_unscoped(principal, route.role, route.operation_id)
            request = Request(ctx.scope)
            raw = b""
            if method not in ("GET", "HEAD", "DELETE"):
                raw = await read_body(receive, route.max_body_bytes or self.services.settings.max_body_bytes)
            body = None
            if route.body is not None:
                body = (route.body() if route.optional_body and not raw.strip()
                        else parse_json_body(route.body, raw, request.headers.get("content-type")))
            query = parse_query(route.query, request) if route.query else None
            result = await route.handler(ApiRequest(ctx, request, principal, params, query, body, raw))
            response = render(result)
        except BodyTooLarge:
            response = ApiError(413, "request body too large").response()
        except ApiError as exc:
            response = exc.response()
        except Exception:
            log.exception("API handler failed request_id=%s operation=%s", ctx.request_id, operation)
            response = ApiError(500, f"internal error (request id {ctx.request_id}); the proxy log has the "
                                "details").response()
        await self._record(ctx, route, operation, response)
        return response

    async def _record(self, ctx: RequestContext, route: Route | None, operation: str, response: Response) -> None:
        state: MutableMapping[str, Any] = ctx.scope.get("state") or {}
        targets = state.get("api_targets")
        ok = response.status_code < 400
        data_out = {"run_query": "api_query", "export_asset": "api_export"}  # data leaving: audited like writes
        audited = route is not None and (route.write or route.operation_id in data_out)
        # A handler may name its own audit event and the run it launched (the trigger: "launch", run id).
        event = state.get("api_event") or (route.event or data_out.get(route.operation_id, "api")
                                           if route is not None else "api")
        reason = None if ok else _detail(response)
        await self.services.record_decision(
            ctx, event=event, decision="allow" if ok else "deny", operation=operation, reason=reason,
            targets=targets or ({"pipelines": [p]} if (p := _pipeline_param(ctx)) else None),
            run_id=state.get("api_run_id"), status=response.status_code,
            audit=audited or response.status_code in (401, 403))


def _pipeline_param(ctx: RequestContext) -> str | None:
    parts = (ctx.rel or "").split("/")
    if len(parts) >= 4 and parts[2] in ("pipelines", "assets") and parts[3] not in ("", "validate"):
        return parts[3]
    return None


def _detail(response: Response) -> str | None:
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return None
    return str(body.get("detail"))[:500] if isinstance(body, dict) else None
