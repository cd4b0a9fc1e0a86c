"""`/api/pipelines`: specs as versioned resources (list, get, create, update, delete, history, rollback)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from aggregator.proxy.api.access import in_scope, require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import (
    PipelineCreate,
    PipelineDocument,
    PipelineSummary,
    PipelineUpdate,
    ValidationReport,
    VersionInfo,
    WriteResult,
)
from aggregator.proxy.api.reload import reload_locations
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.secrets_check import file_secrets
from aggregator.proxy.api.spec_scope import write_guard
from aggregator.proxy.api.spec_store import Version, etag_of
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role

IF_MATCH_HINT = "send If-Match with the ETag from GET /api/pipelines/{name} (optimistic concurrency)"


def routes(api: ApiState) -> list[Route]:
    store = api.specs

    async def _latest(name: str) -> int:
        history: list[Version] = await api.services.run_io(store.history, name)
        return history[0].version if history else 0

    async def _written(req: ApiRequest, version: Version, name: str) -> WriteResult:
        problems: list[str] = []
        if api.limits.reload_after_write:
            problems = await reload_locations(api.client, api.graphql_url, {"x-request-id": req.ctx.request_id})
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [name],
                                                                "versions": [str(version.version)]}
        return WriteResult(name=name, version=version.version, file=version.file,
                           etag=etag_of(version.content) if version.content is not None else "",
                           reloaded=not problems and api.limits.reload_after_write, reload_problems=problems)

    def _no_inline_secrets(content: str) -> None:
        found = file_secrets(content)
        if found:
            raise ApiError(422, "secrets must be environment references ({env: NAME}), never values: "
                           + ", ".join(found))

    def _if_match(req: ApiRequest) -> str:
        value = req.header("if-match")
        if not value:
            raise ApiError(428, f"If-Match is required: {IF_MATCH_HINT}")
        return value

    async def list_pipelines(req: ApiRequest) -> list[PipelineSummary]:
        """Every pipeline declared in the specs directory."""
        located = await api.services.run_io(store.list_all)
        return [PipelineSummary(name=loc.name, file=loc.rel, etag=etag_of(loc.content),
                                version=await _latest(loc.name), in_scope=in_scope(req.principal, loc.name))
                for loc in located]

    async def get_pipeline(req: ApiRequest) -> JSONResponse:
        """One pipeline's spec file; the ETag header is what If-Match must carry on a write."""
        name = req.params["name"]
        loc = await api.services.run_io(store.find, name)
        if loc is None:
            raise ApiError(404, f"no pipeline {name!r} in the specs directory")
        if file_secrets(loc.content):
            # Written by hand with a secret in it: never served (the API accepts no such file either).
            raise ApiError(409, f"{loc.rel} holds inline secrets ({', '.join(file_secrets(loc.content))}); move "
                           "them to {env: NAME} before it can be read through the API")
        doc = PipelineDocument(name=name, file=loc.rel, etag=etag_of(loc.content), version=await _latest(name),
                               in_scope=in_scope(req.principal, name), yaml=loc.content,
                               pipelines_in_file=list(loc.pipelines_in_file))
        return JSONResponse(doc.model_dump(), headers={"etag": doc.etag, "cache-control": "no-store"})

    async def create_pipeline(req: ApiRequest) -> JSONResponse:
        """Create `<name>.yaml`; validated like `aggregator validate`, then the code location is reloaded."""
        body = req.body_as(PipelineCreate)
        require(req.principal, Role.editor, "create_pipeline", [body.name])
        _no_inline_secrets(body.yaml)
        if await api.services.run_io(store.find, body.name) is not None:
            raise ApiError(409, f"pipeline {body.name!r} already exists; update it with PUT /api/pipelines/{body.name}")
        # Expecting "no file yet" (the ETag of nothing) makes two racing creates one 200 and one 412.
        version = await api.services.run_io(store.write, body.name, f"{body.name}.yaml", body.yaml,
                                            req.principal.user, "create", etag_of(None), "pipeline",
                                            write_guard(req.principal, "create_pipeline"))
        result = await _written(req, version, body.name)
        return JSONResponse(result.model_dump(), status_code=201, headers={"etag": result.etag})

    async def update_pipeline(req: ApiRequest) -> JSONResponse:
        """Replace the spec file declaring the pipeline (If-Match required)."""
        name, body = req.params["name"], req.body_as(PipelineUpdate)
        loc = await api.services.run_io(store.find, name)
        if loc is None:
            raise ApiError(404, f"no pipeline {name!r}; create it with POST /api/pipelines")
        require(req.principal, Role.editor, "update_pipeline", [name, *loc.pipelines_in_file])
        _no_inline_secrets(body.yaml)
        version = await api.services.run_io(store.write, name, loc.rel, body.yaml, req.principal.user, "update",
                                            _if_match(req), "pipeline", write_guard(req.principal, "update_pipeline"))
        result = await _written(req, version, name)
        return JSONResponse(result.model_dump(), headers={"etag": result.etag})

    async def delete_pipeline(req: ApiRequest) -> WriteResult:
        """Delete the pipeline's spec file (If-Match required); only when the file declares nothing else."""
        name = req.params["name"]
        loc = await api.services.run_io(store.find, name)
        if loc is None:
            raise ApiError(404, f"no pipeline {name!r}")
        require(req.principal, Role.editor, "delete_pipeline", [name, *loc.pipelines_in_file])
        if loc.pipelines_in_file != (name,):
            raise ApiError(409, f"{loc.rel} also declares {', '.join(p for p in loc.pipelines_in_file if p != name)}; "
                           "update that file without this pipeline instead")
        version = await api.services.run_io(store.write, name, loc.rel, None, req.principal.user, "delete",
                                            _if_match(req), "pipeline", write_guard(req.principal, "delete_pipeline"))
        return await _written(req, version, name)

    async def list_versions(req: ApiRequest) -> list[VersionInfo]:
        """The pipeline's history through the API, newest first: who, when, diff."""
        name = req.params["name"]
        history: list[Version] = await api.services.run_io(store.history, name)
        if not history and await api.services.run_io(store.find, name) is None:
            raise ApiError(404, f"no pipeline {name!r} and no history for it")
        return [VersionInfo(version=v.version, action=v.action, username=v.username, ts=v.ts,  # type: ignore[arg-type]
                            file=v.file, diff=v.diff, yaml=v.content) for v in history]

    async def rollback_pipeline(req: ApiRequest) -> WriteResult:
        """Make an earlier version current again, as a new version (validated like any write)."""
        name = req.params["name"]
        try:
            number = int(req.params["version"])
        except ValueError:
            raise ApiError(400, "version must be a number from GET .../versions") from None
        # The grant first: a 404 before it would tell a caller outside the grant which versions exist.
        require(req.principal, Role.editor, "rollback_pipeline", [name])
        old: Version | None = await api.services.run_io(store.version, name, number)
        if old is None:
            raise ApiError(404, f"pipeline {name!r} has no version {number}")
        if old.content is None:
            raise ApiError(409, f"version {number} of {name!r} is a deletion; roll back to a version before it")
        loc = await api.services.run_io(store.find, name)
        current = loc.pipelines_in_file if loc is not None else ()
        require(req.principal, Role.editor, "rollback_pipeline", [name, *current])
        version = await api.services.run_io(store.write, name, old.file, old.content, req.principal.user,
                                            "rollback", _if_match(req), "pipeline",
                                            write_guard(req.principal, "rollback_pipeline"))
        return await _written(req, version, name)

    async def validate_pipeline(req: ApiRequest) -> ValidationReport:
        """Validate a spec file as `<name>.yaml` would be written, without storing anything."""
        body = req.body_as(PipelineCreate)
        loc = await api.services.run_io(store.find, body.name)
        rel = loc.rel if loc is not None else f"{body.name}.yaml"
        problems = await api.services.run_io(store.check, rel, body.yaml)
        return ValidationReport(ok=not problems, problems=problems)

    return [
        Route("GET", "/api/pipelines", list_pipelines, "List pipelines", response=list[PipelineSummary]),
        Route("POST", "/api/pipelines", create_pipeline, "Create a pipeline", Role.editor, body=PipelineCreate,
              response=WriteResult, statuses=(409, 412, 415, 422)),
        Route("POST", "/api/pipelines/validate", validate_pipeline, "Validate a spec without storing it",
              body=PipelineCreate, response=ValidationReport, statuses=(415,), reads=True),
        Route("GET", "/api/pipelines/{name}", get_pipeline, "Get a pipeline's spec", response=PipelineDocument),
        Route("PUT", "/api/pipelines/{name}", update_pipeline, "Update a pipeline's spec", Role.editor,
              body=PipelineUpdate, response=WriteResult, statuses=(412, 415, 422, 428), headers_in=("If-Match",)),
        Route("DELETE", "/api/pipelines/{name}", delete_pipeline, "Delete a pipeline", Role.editor,
              response=WriteResult, statuses=(409, 412, 422, 428), headers_in=("If-Match",)),
        Route("GET", "/api/pipelines/{name}/versions", list_versions, "A pipeline's version history",
              response=list[VersionInfo]),
        Route("POST", "/api/pipelines/{name}/versions/{version}/rollback", rollback_pipeline,
              "Roll a pipeline back to a version", Role.editor, response=WriteResult,
              statuses=(409, 412, 422, 428), headers_in=("If-Match",)),
    ]
