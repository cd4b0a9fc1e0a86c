"""`/api/connector-types` and `/api/connections`: connector JSON Schemas for forms, check and discover."""

from __future__ import annotations

from aggregator.pipelines.json_schema import _allow_env_refs, _closed, _mark_secrets
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import (
    CheckResult,
    ConnectionInfo,
    ConnectorTypeInfo,
    DiscoverRequest,
    StreamInfoModel,
)
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.api.worker_client import WORKER_STATUSES
from aggregator.proxy.policy.rbac import Role
from connectors.registry import CONNECTOR_TYPES


def _type_info(name: str) -> ConnectorTypeInfo:
    conn_type = CONNECTOR_TYPES[name]
    # The same per-type schema the spec's JSON Schema uses (docs/spec.schema.json): secrets may be {env: NAME}.
    config = _mark_secrets(_closed(_allow_env_refs(conn_type.resource_class().model_json_schema())))
    return ConnectorTypeInfo(name=name, stream_type=conn_type.stream_type, summary=conn_type.summary,
                             config_schema=config, stream_schema=conn_type.stream_model.model_json_schema())


def routes(api: ApiState) -> list[Route]:
    async def list_connector_types(req: ApiRequest) -> list[ConnectorTypeInfo]:
        """Registered connector types with the JSON Schema of their config (to render forms)."""
        return [_type_info(name) for name in CONNECTOR_TYPES]

    async def list_connections(req: ApiRequest) -> list[ConnectionInfo]:
        """Connections declared in the specs and the pipelines using each."""
        catalog = await api.catalog()
        return [ConnectionInfo(name=name, type=conn.type, file=file, used_by=catalog.used_by.get(name, []))
                for name, (conn, file) in sorted(catalog.connections.items())]

    async def _authorize(req: ApiRequest, action: str) -> str:
        name = req.params["name"]
        catalog = await api.catalog()
        if name not in catalog.connections:
            raise ApiError(404, f"no connection {name!r} in the specs")
        # Reaching a system with the connection's secrets is an editor's act, on a connection its pipelines use.
        used = catalog.used_by.get(name, [])
        if req.principal.scope is not None and not used:
            raise ApiError(403, f"{action} on {name!r} needs an unscoped editor: no pipeline uses it",
                           f"editor:{action} (all pipelines)")
        require(req.principal, Role.editor, action, used)
        return name

    async def check_connection(req: ApiRequest) -> CheckResult:
        """Run the connector's check in the worker (reaches the system; no data is read)."""
        name = await _authorize(req, "check_connection")
        answer = await api.worker.call("check", {"connection": name})
        return CheckResult(ok=bool(answer["ok"]), message=str(answer["message"]))

    async def discover_connection(req: ApiRequest) -> list[StreamInfoModel]:
        """Streams and columns the connection offers (or of one `stream:`), discovered by the worker."""
        name = await _authorize(req, "discover_connection")
        body = req.body_as(DiscoverRequest)
        infos = await api.worker.call("discover", {"connection": name, "stream": body.stream})
        return [StreamInfoModel.model_validate(info) for info in infos]

    return [
        Route("GET", "/api/connector-types", list_connector_types, "Connector types and their config schema",
              response=list[ConnectorTypeInfo]),
        Route("GET", "/api/connections", list_connections, "Connections declared in the specs",
              response=list[ConnectionInfo]),
        Route("POST", "/api/connections/{name}/check", check_connection, "Check a connection", Role.editor,
              response=CheckResult, statuses=WORKER_STATUSES, reads=True),
        Route("POST", "/api/connections/{name}/discover", discover_connection, "Discover a connection's streams",
              Role.editor, body=DiscoverRequest, response=list[StreamInfoModel], statuses=(415, *WORKER_STATUSES),
              reads=True),
    ]
