"""The API's dispatcher, mounted by the proxy at `/api/`: authenticate, match, authorize, validate, audit.

Authentication is the proxy's own (session cookie or bearer token, `identify`); refusals, the audit row and
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
    connection_routes,
    connection_write_routes,
    data_routes,
    pipeline_routes,
    preview_transform,
    schema_routes,
    template_routes,
    upload_routes,
)
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import (
    ApiRequest,
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
from aggregator.proxy.identity.authenticate import identify
from aggregator.proxy.transport.asgi import Receive, Send
from aggregator.proxy.transport.forward import BodyTooLarge, read_body
from aggregator.proxy.transport.gateway import same_origin
from aggregator.settings import Settings, load_settings

log = logging.getLogger(__name__)

OPENAPI_PATH = "/api/openapi.json"


class ApiApp:
    def __init__(self, services: Services, client: httpx.AsyncClient, platform: Settings | None = None,
                 limits: ApiLimits | None = None) -> None:
        platform = platform or load_settings()
        self.state = ApiState(services, client, platform, SpecStore(services.store.engine, platform),
                              Warehouse(platform.warehouse_url), limits or ApiLimits.from_env())
        self.routes: list[Route] = [*pipeline_routes.routes(self.state), *data_routes.routes(self.state),
                                    *connection_routes.routes(self.state),
                                    *connection_write_routes.routes(self.state), *schema_routes.routes(self.state),
                                    *upload_routes.routes(self.state),
                                    *template_routes.routes(self.state),
                                    *preview_transform.routes(self.state)]
        self._openapi: dict[str, Any] | None = None

    @property
    def services(self) -> Services:
        return self.state.services

    def openapi(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = openapi_document(self.routes, self.services.settings.path_prefix)
        return self._openapi

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        response = await self._respond(ctx, receive)
        await response(ctx.scope, receive, send)

    async def _respond(self, ctx: RequestContext, receive: Receive) -> Response:
        rel, method = ctx.rel or "", ctx.method
        if rel == OPENAPI_PATH and method in ("GET", "HEAD"):
            # Public like /server_info: the document describes the API, it holds no data.
            return JSONResponse(self.openapi(), headers={"cache-control": "no-cache"})
        operation = f"{method} {ctx.path}"
        who = await identify(ctx.scope, self.services.settings, self.services.store)
        if who.principal is None:
            await self.services.record_decision(ctx, event=who.event, decision="deny", operation=operation,
                                                reason=who.reason, status=401)
            return ApiError(401, who.reason).response()
        ctx.principal = principal = who.principal
        route: Route | None = None
        try:
            route, params = match(self.routes, method, rel)
            operation = f"api:{route.operation_id} {ctx.path}"
            if route.write and principal.via != "token" and not same_origin(ctx.scope, self.services.settings):
                raise ApiError(403, "cross-site write with a session cookie (CSRF)", "same-origin")
            if not principal.may(route.role):
                raise ApiError(403, f"{route.operation_id} needs role {route.role.name}; {principal.user} has "
                               f"{principal.role.name}", f"{route.role.name}:{route.operation_id}")
            request = Request(ctx.scope)
            raw = b""
            if method not in ("GET", "HEAD", "DELETE"):
                raw = await read_body(receive, self.services.settings.max_body_bytes)
            body = parse_json_body(route.body, raw, request.headers.get("content-type")) if route.body else None
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
        event = data_out.get(route.operation_id, "api") if route is not None else "api"
        reason = None if ok else _detail(response)
        await self.services.record_decision(
            ctx, event=event, decision="allow" if ok else "deny", operation=operation, reason=reason,
            targets=targets or ({"pipelines": [p]} if (p := _pipeline_param(ctx)) else None),
            status=response.status_code, audit=audited or response.status_code in (401, 403))


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
