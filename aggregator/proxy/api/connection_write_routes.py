"""Create, update and delete connections: each one a spec file `connections/<name>.yaml` of its own.

Stored and versioned like pipelines (spec_store.py; history key `connection:<name>`), validated like
`aggregator validate`, secrets only as `{env: NAME}`. A connection is shared by every pipeline using it,
so writing one needs an unscoped editor grant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from starlette.responses import JSONResponse

from aggregator.pipelines import bounded_yaml
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Strict, WriteResult
from aggregator.proxy.api.reload import reload_locations
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.secrets_check import inline_secrets, masked
from aggregator.proxy.api.spec_store import etag_of
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role
from connectors.registry import CONNECTOR_TYPES


class ConnectionBody(Strict):
    """A connection's type and config; secrets as `{"env": "NAME"}`."""

    type: str = Field(description=f"Connector type: {', '.join(CONNECTOR_TYPES)}.")
    description: str | None = Field(None, max_length=2000, description="What the connection reaches.")
    config: dict[str, Any] = Field(default_factory=dict, description="The connector's config (see connector-types).")


class ConnectionCreate(ConnectionBody):
    """A new connection."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Connection name (snake_case).")


class ConnectionDocument(ConnectionBody):
    """A connection as stored, with the ETag of its file."""

    name: str = Field(description="Connection name.")
    file: str = Field(description="Spec file declaring it.")
    etag: str = Field(description="Send as If-Match to update or delete.")


def _declared_in(texts: dict[Path, str], name: str) -> tuple[Path, dict[str, Any], str] | None:
    """The file of the spec store declaring connection `name`: path, parsed YAML, text."""
    for path, text in sorted(texts.items()):
        try:
            data = bounded_yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        connections = data.get("connections") if isinstance(data, dict) else None
        if isinstance(connections, dict) and name in connections:
            return path, data, text
    return None


def _content(name: str, body: ConnectionBody) -> str:
    entry: dict[str, Any] = {"type": body.type}
    if body.description:
        entry["description"] = body.description
    entry["config"] = body.config
    return yaml.safe_dump({"connections": {name: entry}}, sort_keys=False, allow_unicode=True)


def _check_secrets(body: ConnectionBody) -> None:
    if body.type not in CONNECTOR_TYPES:
        raise ApiError(422, f"unknown connection type {body.type!r}; allowed: {', '.join(CONNECTOR_TYPES)}")
    inline = inline_secrets(body.config)
    if inline:
        raise ApiError(422, f"secrets must be environment references ({{\"env\": \"NAME\"}}), never values: "
                       f"{', '.join(inline)}")


def routes(api: ApiState) -> list[Route]:
    store = api.specs
    root = api.platform.pipelines_dir

    async def _result(req: ApiRequest, name: str, version: Any) -> WriteResult:
        problems = await reload_locations(api.client, api.graphql_url, {"x-request-id": req.ctx.request_id}) \
            if api.limits.reload_after_write else []
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"connections": [name]}
        return WriteResult(name=name, version=version.version, file=version.file,
                           etag=etag_of(version.content) if version.content is not None else "",
                           reloaded=not problems and api.limits.reload_after_write, reload_problems=problems)

    def _find(name: str) -> tuple[Path, dict[str, Any], str] | None:
        return _declared_in(store.texts(), name)

    async def _own_file(name: str) -> Path:
        found = await api.services.run_io(_find, name)
        if found is None:
            raise ApiError(404, f"no connection {name!r} in the specs")
        path, data, _ = found
        if set(data) != {"connections"} or list(data["connections"]) != [name]:
            raise ApiError(409, f"connection {name!r} is declared in {path.relative_to(root)} with other things; "
                           "edit that file through the pipeline endpoints instead")
        return path

    async def get_connection(req: ApiRequest) -> JSONResponse:
        """A connection's type and config as written (secrets are `{env: NAME}` references)."""
        name = req.params["name"]
        found = await api.services.run_io(_find, name)
        if found is None:
            raise ApiError(404, f"no connection {name!r} in the specs")
        path, data, content = found
        entry = data["connections"][name] if isinstance(data["connections"][name], dict) else {}
        # A hand-written file may hold inline secrets; they are never served back.
        config = masked(dict(entry.get("config") or {}))
        doc = ConnectionDocument(name=name, type=str(entry.get("type")), description=entry.get("description"),
                                 config=config, file=str(path.relative_to(root)), etag=etag_of(content))
        return JSONResponse(doc.model_dump(), headers={"etag": doc.etag, "cache-control": "no-store"})

    async def create_connection(req: ApiRequest) -> JSONResponse:
        """Create `connections/<name>.yaml`; secrets only as environment references."""
        body = req.body_as(ConnectionCreate)
        _check_secrets(body)
        if await api.services.run_io(_find, body.name) is not None:
            raise ApiError(409, f"connection {body.name!r} already exists")
        version = await api.services.run_io(store.write, f"connection:{body.name}", f"connections/{body.name}.yaml",
                                            _content(body.name, body), req.principal.user, "create", etag_of(None),
                                            "connection")
        result = await _result(req, body.name, version)
        return JSONResponse(result.model_dump(), status_code=201, headers={"etag": result.etag})

    async def update_connection(req: ApiRequest) -> WriteResult:
        """Replace a connection's type and config (If-Match required)."""
        name, body = req.params["name"], req.body_as(ConnectionBody)
        _check_secrets(body)
        path = await _own_file(name)
        if_match = req.header("if-match")
        if not if_match:
            raise ApiError(428, "If-Match is required: send the ETag from GET /api/connections/{name}")
        version = await api.services.run_io(store.write, f"connection:{name}", str(path.relative_to(root)),
                                            _content(name, body), req.principal.user, "update", if_match,
                                            "connection")
        return await _result(req, name, version)

    async def delete_connection(req: ApiRequest) -> WriteResult:
        """Delete a connection (If-Match required); refused (422) while a pipeline still uses it."""
        name = req.params["name"]
        path = await _own_file(name)
        if_match = req.header("if-match")
        if not if_match:
            raise ApiError(428, "If-Match is required: send the ETag from GET /api/connections/{name}")
        version = await api.services.run_io(store.write, f"connection:{name}", str(path.relative_to(root)), None,
                                            req.principal.user, "delete", if_match, "connection")
        return await _result(req, name, version)

    return [
        Route("POST", "/api/connections", create_connection, "Create a connection", Role.editor, unscoped=True,
              body=ConnectionCreate, response=WriteResult, statuses=(409, 412, 415, 422)),
        Route("GET", "/api/connections/{name}", get_connection, "Get a connection", response=ConnectionDocument),
        Route("PUT", "/api/connections/{name}", update_connection, "Update a connection", Role.editor, unscoped=True,
              body=ConnectionBody, response=WriteResult, statuses=(409, 412, 415, 422, 428),
              headers_in=("If-Match",)),
        Route("DELETE", "/api/connections/{name}", delete_connection, "Delete a connection", Role.editor, unscoped=True,
              response=WriteResult, statuses=(409, 412, 422, 428), headers_in=("If-Match",)),
    ]
