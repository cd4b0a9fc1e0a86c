"""`/api/connector-types` and `/api/connections`: connector JSON Schemas for forms, check and discover."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from aggregator.pipelines.connections import build_resource
from aggregator.pipelines.json_schema import _allow_env_refs, _closed
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
from aggregator.proxy.policy.rbac import Role
from connectors.registry import CONNECTOR_TYPES


def _type_info(name: str) -> ConnectorTypeInfo:
    conn_type = CONNECTOR_TYPES[name]
    # The same per-type schema the spec's JSON Schema uses (docs/spec.schema.json): secrets may be {env: NAME}.
    config = _closed(_allow_env_refs(conn_type.resource_class().model_json_schema()))
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

    async def _resource(req: ApiRequest, action: str) -> Any:
        name = req.params["name"]
        catalog = await api.catalog()
        if name not in catalog.connections:
            raise ApiError(404, f"no connection {name!r} in the specs")
        conn, _ = catalog.connections[name]
        # Reaching a system with the connection's secrets is an editor's act, on a connection its pipelines use.
        used = catalog.used_by.get(name, [])
        if req.principal.scope is not None and not used:
            raise ApiError(403, f"{action} on {name!r} needs an unscoped editor: no pipeline uses it",
                           f"editor:{action} (all pipelines)")
        require(req.principal, Role.editor, action, used)
        try:
            return build_resource(conn, resolve_as=name)
        except (ValidationError, ValueError) as exc:
            # MissingSecretError names the variable the proxy's environment lacks, never a value.
            raise ApiError(409, f"connection {name!r} cannot be built here: {str(exc).splitlines()[0]}") from None

    async def check_connection(req: ApiRequest) -> CheckResult:
        """Run the connector's check (reaches the system; no data is read)."""
        resource = await _resource(req, "check_connection")
        try:
            message = await api.services.run_io(resource.check)
        except Exception as exc:  # noqa: BLE001 - connector errors are the answer, sanitized by the connector
            return CheckResult(ok=False, message=str(exc).splitlines()[0][:500])
        return CheckResult(ok=True, message=str(message))

    async def discover_connection(req: ApiRequest) -> list[StreamInfoModel]:
        """Streams and columns the connection offers (or of one `stream:`)."""
        resource = await _resource(req, "discover_connection")
        body = req.body
        assert isinstance(body, DiscoverRequest)
        stream = None
        if body.stream is not None:
            model = next(t.stream_model for t in CONNECTOR_TYPES.values()
                         if t.resource_class() is type(resource))
            try:
                stream = model.model_validate(body.stream)
            except ValidationError as exc:
                raise ApiError(400, f"stream: {exc.errors()[0]['msg']}") from None
        try:
            infos = await api.services.run_io(resource.discover, stream)
        except Exception as exc:  # noqa: BLE001 - connector errors name what failed, without secrets
            raise ApiError(409, f"discover failed: {str(exc).splitlines()[0][:500]}") from None
        return [StreamInfoModel(name=i.name, columns={k: str(getattr(v, "value", v)) for k, v in i.columns.items()},
                                detail=i.detail) for i in infos]

    return [
        Route("GET", "/api/connector-types", list_connector_types, "Connector types and their config schema",
              response=list[ConnectorTypeInfo]),
        Route("GET", "/api/connections", list_connections, "Connections declared in the specs",
              response=list[ConnectionInfo]),
        Route("POST", "/api/connections/{name}/check", check_connection, "Check a connection", Role.editor,
              response=CheckResult, statuses=(409,), reads=True),
        Route("POST", "/api/connections/{name}/discover", discover_connection, "Discover a connection's streams",
              Role.editor, body=DiscoverRequest, response=list[StreamInfoModel], statuses=(409, 415), reads=True),
    ]
