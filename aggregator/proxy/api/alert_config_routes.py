"""`/api/alerts/config`: the global `alerts:` block (channels, rules, quiet hours, delivery) as a versioned
spec file, and every pipeline's own `alerts:` rules for reading.

The block is stored and versioned like pipelines and connections (spec_store.py; history key
`alerts:config`), validated like `aggregator validate` (422 with `file:line: field: message` problems), with
If-Match on every write. Channels and default rules are shared by every pipeline, so writing the block needs an
unscoped editor grant, as a connection does. Secrets are `{env: NAME}` references only; the proxy stores
the names and never resolves them (a channel test runs in the worker, alert_routes.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from starlette.responses import JSONResponse

from aggregator.pipelines import bounded_yaml
from aggregator.proxy.api.access import in_scope
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Strict, VersionInfo, WriteResult
from aggregator.proxy.api.reload import reload_locations
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.secrets_check import file_secrets, masked
from aggregator.proxy.api.spec_store import Version, etag_of
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role
from connectors.secrets import SecretPolicy

HISTORY_KEY = "alerts:config"
DEFAULT_FILE = "alerts.yaml"


class PipelineAlertsInfo(Strict):
    """A pipeline's own `alerts:` block, as written in its spec file (edited with the pipeline)."""

    pipeline: str = Field(description="Pipeline name.")
    file: str = Field(description="Spec file declaring it.")
    inherit: bool = Field(description="Whether the global default rules also apply to it.")
    rules: list[dict[str, Any]] = Field(description="Its own rules, as written.")
    in_scope: bool = Field(description="Whether the caller's grant covers this pipeline.")


class AlertConfigDocument(Strict):
    """The global `alerts:` block as written, with what a write must send back."""

    file: str = Field(description="Spec file declaring the block (`alerts.yaml` when none does yet).")
    exists: bool = Field(description="Whether some spec file declares the global block.")
    etag: str = Field(description="Send as If-Match to update (the ETag of no file when none exists).")
    version: int = Field(description="Latest version in the block's history (0: never written through the API).")
    alerts: dict[str, Any] = Field(description="The block as written; secrets are `{env: NAME}` references.")
    own_file: bool = Field(description="The file holds nothing but the block; otherwise edit it as a spec file.")
    comments: bool = Field(description="The file has comments, which a write from the Console does not keep.")
    inline_secrets: list[str] = Field(description="Values that look like secrets written inline (masked here); "
                                      "a write must replace them with `{env: NAME}`.")
    secret_names: list[str] = Field(description="Variable names (or `PREFIX_*`) `{env: NAME}` may read "
                                    "(AGGREGATOR_SECRET_NAMES); platform variables never.")
    pipelines: list[PipelineAlertsInfo] = Field(description="Pipelines with an `alerts:` block of their own.")


class AlertConfigUpdate(Strict):
    """The new global `alerts:` block."""

    alerts: dict[str, Any] = Field(description="ui_url, channels, rules, quiet_hours, delivery (docs/alerts.md); "
                                   "secrets only as `{\"env\": \"NAME\"}`.")


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        data = bounded_yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _json(value: Any) -> Any:
    """YAML values as JSON (an unquoted date or time becomes its text)."""
    return json.loads(json.dumps(value, default=str))


def _has_comments(text: str) -> bool:
    """Whether a `#` outside every token (PyYAML's scanner skips comments, so they sit between tokens)."""
    try:
        inside = {i for t in yaml.scan(text) for i in range(t.start_mark.index, t.end_mark.index)}
    except yaml.YAMLError:
        return "#" in text
    return any(c == "#" and i not in inside for i, c in enumerate(text))


def _global_block(texts: dict[Path, str], root: Path) -> tuple[str, str, dict[str, Any]] | None:
    """The first file (in path order, as the loader reads them) declaring `alerts:`: rel path, text, data."""
    for path, text in sorted(texts.items()):
        data = _parsed(text)
        if data is not None and "alerts" in data:
            return path.relative_to(root).as_posix(), text, data
    return None


def _pipeline_blocks(texts: dict[Path, str], root: Path) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, text in sorted(texts.items()):
        data = _parsed(text)
        pipelines = data.get("pipelines") if data is not None else None
        for pipeline in pipelines if isinstance(pipelines, list) else []:
            if isinstance(pipeline, dict) and isinstance(pipeline.get("alerts"), dict):
                found.append((str(pipeline.get("name")), path.relative_to(root).as_posix(), pipeline["alerts"]))
    return found


def content_of(alerts: dict[str, Any]) -> str:
    """The file a write stores: the block alone, keys in the order given."""
    return yaml.safe_dump({"alerts": alerts}, sort_keys=False, allow_unicode=True, default_flow_style=False)


def routes(api: ApiState) -> list[Route]:
    store = api.specs
    root = api.platform.pipelines_dir

    async def _latest() -> int:
        history: list[Version] = await api.services.run_io(store.history, HISTORY_KEY)
        return history[0].version if history else 0

    async def get_alert_config(req: ApiRequest) -> JSONResponse:
        """The global alert channels and rules as written, and each pipeline's own rules."""
        texts: dict[Path, str] = await api.services.run_io(store.texts)
        found = _global_block(texts, root)
        rel, text, data = found if found is not None else (DEFAULT_FILE, None, {"alerts": {}})
        block = data.get("alerts") if isinstance(data.get("alerts"), dict) else {}
        doc = AlertConfigDocument(
            file=rel, exists=found is not None, etag=etag_of(text), version=await _latest(),
            alerts=_json(masked(block)), own_file=set(data) == {"alerts"},
            comments=text is not None and _has_comments(text),
            inline_secrets=file_secrets(text) if text is not None else [],
            secret_names=list(SecretPolicy.from_env().patterns),
            pipelines=[PipelineAlertsInfo(pipeline=name, file=file, inherit=bool(block_.get("inherit", True)),
                                          rules=_json([r for r in block_.get("rules") or [] if isinstance(r, dict)]),
                                          in_scope=in_scope(req.principal, name))
                       for name, file, block_ in _pipeline_blocks(texts, root)])
        return JSONResponse(doc.model_dump(), headers={"etag": doc.etag, "cache-control": "no-store"})

    async def update_alert_config(req: ApiRequest) -> WriteResult:
        """Replace the global `alerts:` block (If-Match required); creates `alerts.yaml` when none exists."""
        body = req.body_as(AlertConfigUpdate)
        if_match = req.header("if-match")
        if not if_match:
            raise ApiError(428, "If-Match is required: send the ETag from GET /api/alerts/config")
        texts: dict[Path, str] = await api.services.run_io(store.texts)
        found = _global_block(texts, root)
        if found is not None and set(found[2]) != {"alerts"}:
            raise ApiError(409, f"the global alerts block is declared in {found[0]} with other things; edit that "
                           "file through the pipeline endpoints, or move the block to an alerts.yaml of its own")
        rel = found[0] if found is not None else DEFAULT_FILE
        content = content_of(body.alerts)
        inline = file_secrets(content)
        if inline:
            raise ApiError(422, "secrets must be environment references ({\"env\": \"NAME\"}), never values: "
                           + ", ".join(inline))
        version = await api.services.run_io(store.write, HISTORY_KEY, rel, content, req.principal.user,
                                            "update" if found is not None else "create", if_match,
                                            "alert configuration")
        problems = await reload_locations(api.client, api.graphql_url, {"x-request-id": req.ctx.request_id}) \
            if api.limits.reload_after_write else []
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"alerts": [rel], "versions": [str(version.version)]}
        return WriteResult(name=HISTORY_KEY, version=version.version, file=version.file,
                           etag=etag_of(version.content), reloaded=not problems and api.limits.reload_after_write,
                           reload_problems=problems)

    async def list_alert_config_versions(req: ApiRequest) -> list[VersionInfo]:
        """The global alert block's history through the API, newest first: who, when, diff."""
        history: list[Version] = await api.services.run_io(store.history, HISTORY_KEY)
        return [VersionInfo(version=v.version, action=v.action, username=v.username, ts=v.ts,  # type: ignore[arg-type]
                            file=v.file, diff=v.diff, yaml=v.content) for v in history]

    return [
        Route("GET", "/api/alerts/config", get_alert_config, "Get the alert channels and rules",
              response=AlertConfigDocument),
        Route("PUT", "/api/alerts/config", update_alert_config, "Update the alert channels and rules", Role.editor,
              unscoped=True, body=AlertConfigUpdate, response=WriteResult, statuses=(409, 412, 415, 422, 428),
              headers_in=("If-Match",)),
        Route("GET", "/api/alerts/config/versions", list_alert_config_versions,
              "The alert configuration's version history", response=list[VersionInfo]),
    ]
