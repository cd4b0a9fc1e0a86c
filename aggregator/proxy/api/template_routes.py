"""`/api/templates`: list the templates declared in the specs and instantiate one into a new pipeline.

An instance is written as the expanded pipeline (with a comment naming the template and parameters), so it
is an ordinary versioned pipeline afterwards: readable, editable and scoped like any other. It does not
follow later edits of the template; a spec using `{use: ..., with: ...}` by hand still does.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from aggregator.pipelines.load import collect_templates, read_raw
from aggregator.pipelines.templates import TemplateError, instantiate
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Strict, WriteResult
from aggregator.proxy.api.reload import reload_locations
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.spec_scope import write_guard
from aggregator.proxy.api.spec_store import etag_of
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role


class TemplateInfo(BaseModel):
    """A template and the parameters it takes."""

    name: str = Field(description="Template name (`use:` value).")
    params: list[str] = Field(description="Parameters to give in `with:` / `params`.")
    file: str = Field(description="Spec file declaring it.")
    pipeline: dict[str, Any] = Field(description="The pipeline with `${param}` placeholders.")


class Instantiate(Strict):
    """Parameters of a new pipeline made from a template."""

    params: dict[str, str | int | float | bool] = Field(default_factory=dict, description="Parameter values.")


def instance_file(template: str, file: str, params: dict[str, Any], pipeline: dict[str, Any]) -> str:
    """The spec file an instance is written as: a comment naming its origin, then the expanded pipeline (the
    Console's builder docs show this text, and their test renders it here)."""
    return (f"# Made from template {template} ({file}) with {json.dumps(params, sort_keys=True)}\n"
            + yaml.safe_dump({"pipelines": [pipeline]}, sort_keys=False, allow_unicode=True))


def routes(api: ApiState) -> list[Route]:
    root = api.platform.pipelines_dir

    def _templates() -> dict[str, tuple[Any, str]]:
        raws = []
        for path, text in api.specs.texts().items():
            try:
                raws.append(read_raw(path, text))
            except ValueError:
                continue  # a broken file declares no usable template; `aggregator validate` names it
        found, _ = collect_templates(raws)
        return {name: (template, str(raw.path.relative_to(root))) for name, (template, raw) in found.items()}

    async def list_templates(req: ApiRequest) -> list[TemplateInfo]:
        """Templates declared in the specs, with their parameters."""
        found = await api.services.run_io(_templates)
        return [TemplateInfo(name=name, params=list(t.params), file=file, pipeline=t.pipeline)
                for name, (t, file) in sorted(found.items())]

    async def instantiate_template(req: ApiRequest) -> JSONResponse:
        """Make a new pipeline from a template (validated and versioned like a create)."""
        name, body = req.params["name"], req.body_as(Instantiate)
        found = await api.services.run_io(_templates)
        if name not in found:
            raise ApiError(404, f"no template {name!r}")
        template, file = found[name]
        try:
            pipeline = instantiate(name, template, dict(body.params))
        except TemplateError as exc:
            raise ApiError(422, str(exc)) from None
        pipeline_name = pipeline.get("name")
        if not isinstance(pipeline_name, str) or not pipeline_name.replace("_", "a").isalnum():
            raise ApiError(422, f"template {name!r} with these parameters gives no valid pipeline name "
                           f"({pipeline_name!r})")
        require(req.principal, Role.editor, "instantiate_template", [pipeline_name])
        if await api.services.run_io(api.specs.find, pipeline_name) is not None:
            raise ApiError(409, f"pipeline {pipeline_name!r} already exists")
        content = instance_file(name, file, dict(body.params), pipeline)
        version = await api.services.run_io(api.specs.write, pipeline_name, f"{pipeline_name}.yaml", content,
                                            req.principal.user, "create", etag_of(None), "pipeline",
                                            write_guard(req.principal, "instantiate_template"))
        problems = await reload_locations(api.client, api.graphql_url, {"x-request-id": req.ctx.request_id}) \
            if api.limits.reload_after_write else []
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [pipeline_name], "templates": [name]}
        result = WriteResult(name=pipeline_name, version=version.version, file=version.file,
                             etag=etag_of(content), reloaded=not problems and api.limits.reload_after_write,
                             reload_problems=problems)
        return JSONResponse(result.model_dump(), status_code=201, headers={"etag": result.etag})

    return [
        Route("GET", "/api/templates", list_templates, "List templates", response=list[TemplateInfo]),
        Route("POST", "/api/templates/{name}/instantiate", instantiate_template, "Instantiate a template",
              Role.editor, body=Instantiate, response=WriteResult, statuses=(409, 412, 415, 422)),
    ]
