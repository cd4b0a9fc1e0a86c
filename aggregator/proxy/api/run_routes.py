"""Trigger a pipeline run and search run logs: typed routes of the management API.

`POST /api/pipelines/{name}/trigger` launches `<name>_job` through Dagster's own GraphQL API, tagged with who
asked and the request id (so every run log line can carry it). Its run config is limited to op config of the
pipeline's own assets (policy/run_config.py). An `Idempotency-Key` is claimed in the proxy database before
launching (storage/idempotency.py), so retries of one key launch once across every proxy replica, and is stored
as a run tag too, so the record of what was launched stays in Dagster. A job missing because its code location
is down answers 503 naming the location, never "no pipeline".
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from aggregator.logs.run_logger import REQUEST_ID_TAG
from aggregator.logs.search import LogQuery, search_logs
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.policy.launch_tags import USER_TAG, kubernetes_tags
from aggregator.proxy.policy.locations import describe_down, unavailable_locations
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.policy.run_config import RunConfigRefused, check_trigger_run_config
from aggregator.proxy.routes.ops import IDEMPOTENCY_TAG, TRIGGERED_BY_TAG, DagsterOps, UpstreamError

_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces: it becomes a tag value
CLAIM_WAIT_S = 30.0  # how long a retry waits for the launch another request is making for its key
MAX_TRIGGER_BODY = 256 * 1024  # a trigger carries a partition and op config, never data


class TriggerBody(BaseModel):
    """What an upstream system may send with a trigger; everything optional (an empty body is fine)."""

    model_config = ConfigDict(extra="forbid")

    run_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Op config of the pipeline's own assets only: `{ops: {<asset op>: {config: {...}}}}`. "
                    "`resources`, `execution`, `loggers` and ops of other pipelines are refused (422).")
    partition: str | None = Field(default=None, max_length=200, description="Partition key to load.")


class TriggerResult(BaseModel):
    run_id: str = Field(description="The Dagster run launched (or, on a replay, launched before).")
    pipeline: str = Field(description="The pipeline triggered.")
    job: str = Field(description="Its Dagster job, `<pipeline>_job`.")
    replayed: bool = Field(description="True when the Idempotency-Key had launched this run already (200).")
    request_id: str = Field(description="The X-Request-Id of this request, also a tag of a new run.")


class LogLineOut(BaseModel):
    run_id: str
    storage_id: int
    timestamp: float
    time: str = Field(description="ISO 8601, UTC.")
    level: str
    step_key: str | None
    event_type: str | None
    message: str
    job_name: str | None
    error: str | None = None


class LogPageOut(BaseModel):
    lines: list[LogLineOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


def routes(ops: DagsterOps) -> list[Route]:
    def mark(req: ApiRequest, *, event: str, run_id: str | None = None) -> None:
        state = req.ctx.scope.setdefault("state", {})
        state["api_event"], state["api_run_id"] = event, run_id

    async def trigger_pipeline(req: ApiRequest) -> Response:
        """Launch the pipeline's job, once per Idempotency-Key; answers 201 (new run) or 200 (replay)."""
        name, principal = req.params["name"], req.principal
        job_name = f"{name}_job"
        mark(req, event="launch")
        require(principal, Role.launcher, "trigger_pipeline", [name])
        key = req.header("idempotency-key")
        if key is not None and not _KEY.match(key):
            raise ApiError(400, "Idempotency-Key: 1-200 printable ASCII characters, no spaces")
        body = req.body_as(TriggerBody)
        tag_key = f"{principal.user}:{key}" if key else None
        if tag_key:
            claim = await ops.services.run_io(ops.keys.claim, tag_key)
            if not claim.owner:
                run_id = claim.run_id or await _claimed_run(tag_key)
                if run_id is None:
                    raise ApiError(409, "a request with this Idempotency-Key is still being launched; retry it")
                mark(req, event="launch", run_id=run_id)
                return _result(TriggerResult(run_id=run_id, pipeline=name, job=job_name, replayed=True,
                                             request_id=req.ctx.request_id), 200)
        launched: str | None = None
        try:
            response, launched = await _launch(req, name, job_name, body, tag_key)
            return response
        except UpstreamError as exc:
            raise ApiError(502, str(exc)) from None
        finally:
            if tag_key:
                # A launch that failed (or was interrupted) gives the key back, so the client may retry it.
                if launched:
                    await ops.services.run_io(ops.keys.complete, tag_key, launched)
                else:
                    await ops.services.run_io(ops.keys.release, tag_key)

    async def _claimed_run(tag_key: str) -> str | None:
        """The run of a key another request claimed, once it has launched (polled: a launch takes a moment)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLAIM_WAIT_S
        while loop.time() < deadline:
            if run_id := await ops.services.run_io(ops.keys.run_of, tag_key):
                return str(run_id)
            await asyncio.sleep(0.2)
        return None

    async def _launch(req: ApiRequest, name: str, job_name: str, body: TriggerBody,
                      tag_key: str | None) -> tuple[Response, str | None]:
        """The response, and the run id when a run was launched (or found) for the key."""
        user, request_id = req.principal.user, req.ctx.request_id
        # A key used before the claims table existed (or whose claim expired) is still found on its run.
        if tag_key and (run_id := await ops.run_with_tag(IDEMPOTENCY_TAG, tag_key)):
            mark(req, event="launch", run_id=run_id)
            return _result(TriggerResult(run_id=run_id, pipeline=name, job=job_name, replayed=True,
                                         request_id=request_id), 200), run_id
        job = await ops.job(job_name)
        if job is None and (down := await unavailable_locations(ops.client, ops.graphql_url)):
            # A job missing because its code location is down is "not now", not "no such pipeline".
            raise ApiError(503, describe_down(down, name))
        if job is None:
            raise ApiError(404, f"no pipeline {name!r} (job {job_name}) in any code location")
        try:
            check_trigger_run_config(body.run_config, name, job.ops)
        except RunConfigRefused as exc:
            raise ApiError(422, str(exc)) from None
        tags = [{"key": USER_TAG, "value": user}, {"key": TRIGGERED_BY_TAG, "value": user},
                {"key": REQUEST_ID_TAG, "value": request_id}]
        if tag_key:
            tags.append({"key": IDEMPOTENCY_TAG, "value": tag_key})
        if body.partition:
            tags.append({"key": "dagster/partition", "value": body.partition})
        if k8s := kubernetes_tags(tags):  # the shared launch-tag rule; only our own tags are here today
            raise ApiError(403, f"run tags {', '.join(k8s)} would configure Kubernetes", "admin:kubernetes_tags")
        result = await ops.launch({"selector": job.selector, "runConfigData": body.run_config,
                                   "executionMetadata": {"tags": tags}})
        kind = result["__typename"]
        if kind == "LaunchRunSuccess":
            run_id = result["run"]["runId"]
            mark(req, event="launch", run_id=run_id)
            return _result(TriggerResult(run_id=run_id, pipeline=name, job=job_name, replayed=False,
                                         request_id=request_id), 201), run_id
        if kind in ("RunConfigValidationInvalid", "InvalidSubsetError"):
            messages = [e["message"] for e in result.get("errors") or []] or [result.get("message") or kind]
            raise ApiError(422, f"{kind}: " + "; ".join(messages[:20]))
        # Dagster's internal error text stays in Dagster; the client gets the kind.
        raise ApiError(502, f"Dagster did not launch the run ({kind})")

    async def search_run_logs(req: ApiRequest) -> LogPageOut:
        """Run log lines across runs, newest first; a scoped grant searches one of its pipelines."""
        query = req.query_as(LogQuery)
        principal = req.principal
        if principal.scope is not None and query.pipeline is None:
            raise ApiError(403, "a scoped grant searches one of its pipelines: pass pipeline=<name>",
                           "viewer:search_run_logs on pipelines:*")
        require(principal, Role.viewer, "search_run_logs", [query.pipeline] if query.pipeline else [])
        if ops.dagster_home is None:
            raise ApiError(503, "log search is not configured on this proxy (DAGSTER_HOME)")
        page = await ops.services.run_io(search_logs, ops.instance(), query)
        return LogPageOut(lines=[LogLineOut(**line.to_json()) for line in page.lines], next_cursor=page.next_cursor)

    return [
        Route("POST", "/api/pipelines/{name}/trigger", trigger_pipeline, "Trigger a pipeline run", Role.launcher,
              body=TriggerBody, optional_body=True, max_body_bytes=MAX_TRIGGER_BODY, response=TriggerResult,
              statuses=(201, 409, 413, 415, 422, 502, 503),
              headers_in=("Idempotency-Key",)),
        Route("GET", "/api/logs", search_run_logs, "Search run logs", query=LogQuery, response=LogPageOut,
              statuses=(503,)),
    ]


def _result(result: TriggerResult, status: int) -> Response:
    return JSONResponse(result.model_dump(), status_code=status, headers={"cache-control": "no-store"})
