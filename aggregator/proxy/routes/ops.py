"""Operations routes on the proxy: trigger a pipeline run, search run logs, and /metrics.

`POST /api/pipelines/{name}/trigger` launches `<name>_job` through Dagster's own GraphQL API, tagged with who
asked and the request id (so every run log line can carry it). An `Idempotency-Key` is claimed in the proxy
database before launching (storage/idempotency.py), so two retries of one key launch once across every proxy
replica, and is stored as a run tag too, so the record of what was launched stays in Dagster."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aggregator.logs.run_logger import REQUEST_ID_TAG
from aggregator.metrics.proxy import PROXY_REGISTRY
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.policy import bounded_json
from aggregator.proxy.policy.locations import RETRY_AFTER_S as LOCATION_RETRY_AFTER_S
from aggregator.proxy.policy.locations import describe_down, unavailable_locations
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.refusals import refusal
from aggregator.proxy.storage.idempotency import IdempotencyKeys
from aggregator.proxy.transport.asgi import Receive, Send

TRIGGER_PATH = re.compile(r"^/api/pipelines/(?P<name>[a-z][a-z0-9_]{0,62})/trigger$")
IDEMPOTENCY_TAG = "aggregator/idempotency_key"
TRIGGERED_BY_TAG = "aggregator/triggered_by"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces: it becomes a tag value
MAX_TRIGGER_BODY = 256 * 1024

REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } jobs { name } } } } }"""
RUNS_WITH_TAG = """query Runs($f: RunsFilter) { runsOrError(filter: $f, limit: 1) { __typename
  ... on Runs { results { runId } } } }"""
LAUNCH = """mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } ... on InvalidSubsetError { message } ... on PipelineNotFoundError { message }
  ... on RunConflict { message } ... on UnauthorizedError { message } } }"""


class TriggerBody(BaseModel):
    """What an upstream system may send with a trigger; everything optional."""

    model_config = ConfigDict(extra="forbid")

    run_config: dict[str, Any] = Field(default_factory=dict, description="Dagster run config for the job.")
    partition: str | None = Field(default=None, max_length=200, description="Partition key to load.")


class UpstreamError(Exception):
    """Dagster's GraphQL API did not answer as expected."""


class OpsRoutes:
    def __init__(self, services: Services, client: httpx.AsyncClient, dagster_home: str | None = None) -> None:
        self.services, self.client = services, client
        self.graphql_url = f"{services.settings.upstream}{services.settings.path_prefix}/graphql"
        # /api/logs reads Dagster's event log directly: only when the proxy is given the instance (DAGSTER_HOME)
        self.dagster_home = dagster_home
        self._instance: Any = None
        self.keys = IdempotencyKeys(services.store.engine)

    async def _gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self.client.post(self.graphql_url, json={"query": query, "variables": variables or {}},
                                              timeout=30)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"Dagster GraphQL unreachable: {type(exc).__name__}") from None
        if body.get("errors") or "data" not in body:
            raise UpstreamError("Dagster GraphQL refused the request")
        return dict(body["data"])

    async def trigger(self, ctx: RequestContext, receive: Receive, send: Send, name: str) -> None:
        principal, operation = ctx.principal, f"POST {ctx.path}"
        if principal is None:
            raise RuntimeError("trigger route reached without a principal")
        job = f"{name}_job"
        targets = {"jobs": [job]}
        if not principal.may(Role.launcher):
            return await self.services.refuse(ctx, receive, send, 403, "launch", operation,
                                              "triggering a pipeline needs launcher", f"{Role.launcher.name}:launch",
                                              targets)
        if principal.scope is not None and name not in principal.scope:
            return await self.services.refuse(ctx, receive, send, 403, "launch", operation,
                                              "pipeline outside the grant",
                                              f"{Role.launcher.name}:launch on pipelines:{name}", targets)
        request = Request(ctx.scope, receive)
        key = request.headers.get("idempotency-key")
        if key is not None and not _KEY.match(key):
            return await refusal(400, "Idempotency-Key: 1-200 printable ASCII characters, no spaces")(
                ctx.scope, receive, send)
        raw = await request.body()
        if len(raw) > MAX_TRIGGER_BODY:
            return await refusal(413, "request body too large")(ctx.scope, receive, send)
        try:
            data = bounded_json.loads(raw) if raw.strip() else {}
        except bounded_json.JsonBudgetError as exc:
            return await refusal(exc.status, f"body refused: {exc}")(ctx.scope, receive, send)
        except ValueError:
            return await refusal(400, "body is not valid JSON")(ctx.scope, receive, send)
        try:
            body = TriggerBody.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return await refusal(400, f"{where}: {first['msg']}; allowed keys: run_config, partition")(
                ctx.scope, receive, send)
        tag_key = f"{principal.user}:{key}" if key else None
        if tag_key:
            claim = await self.services.run_io(self.keys.claim, tag_key)
            if not claim.owner:
                run_id = claim.run_id or await self._claimed_run(tag_key)
                response = (await self._replay(ctx, name, job, run_id) if run_id else
                            refusal(409, "a request with this Idempotency-Key is still being launched; retry it"))
                return await response(ctx.scope, receive, send)
        run_id = None
        try:
            response, run_id = await self._launch(ctx, principal.user, name, job, body, tag_key)
        except UpstreamError as exc:
            await self.services.record_decision(ctx, event="launch", decision="error", operation=operation,
                                                reason=str(exc), targets=targets, status=502)
            response = refusal(502, str(exc))
        finally:
            if tag_key:
                # A launch that failed (or was interrupted) gives the key back, so the client may retry it.
                await self.services.run_io(self.keys.complete if run_id else self.keys.release,
                                           *((tag_key, run_id) if run_id else (tag_key,)))
        await response(ctx.scope, receive, send)

    async def _claimed_run(self, tag_key: str, wait_s: float = 30.0) -> str | None:
        """The run of a key another request claimed, once it has launched (polled: the launch takes a moment)."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            run_id: str | None = await self.services.run_io(self.keys.run_of, tag_key)
            if run_id:
                return run_id
            await asyncio.sleep(0.2)
        return None

    async def _replay(self, ctx: RequestContext, name: str, job: str, run_id: str) -> Response:
        await self.services.record_decision(ctx, event="launch", decision="allow", operation=f"POST {ctx.path}",
                                            reason="idempotent replay", targets={"jobs": [job]}, run_id=run_id,
                                            status=200)
        return JSONResponse({"run_id": run_id, "pipeline": name, "job": job, "replayed": True,
                             "request_id": ctx.request_id}, status_code=200)

    async def _launch(self, ctx: RequestContext, user: str, name: str, job: str, body: TriggerBody,
                      tag_key: str | None) -> tuple[Response, str | None]:
        """The response, and the run id when a run was launched (or found) for the key."""
        operation = f"POST {ctx.path}"
        if tag_key:
            # A key used before the claims table existed (or whose claim expired) is still found on its run.
            data = await self._gql(RUNS_WITH_TAG, {"f": {"tags": [{"key": IDEMPOTENCY_TAG, "value": tag_key}]}})
            found = data["runsOrError"].get("results") or []
            if found:
                return await self._replay(ctx, name, job, found[0]["runId"]), found[0]["runId"]
        selector = await self._selector(job)
        if selector is None and (down := await unavailable_locations(self.client, self.graphql_url)):
            # A job missing because its code location is down is "not now", not "no such pipeline".
            await self.services.record_decision(ctx, event="launch", decision="error", operation=operation,
                                                reason="code location down", targets={"jobs": [job]}, status=503)
            return refusal(503, describe_down(down, name), retry_after=LOCATION_RETRY_AFTER_S), None
        if selector is None:
            await self.services.record_decision(ctx, event="launch", decision="deny", operation=operation,
                                                reason="no such pipeline", targets={"jobs": [job]}, status=404)
            return refusal(404, f"no pipeline {name!r} (job {job}) in any code location"), None
        tags = [{"key": "user", "value": user},
                {"key": TRIGGERED_BY_TAG, "value": user},
                {"key": REQUEST_ID_TAG, "value": ctx.request_id}]
        if tag_key:
            tags.append({"key": IDEMPOTENCY_TAG, "value": tag_key})
        if body.partition:
            tags.append({"key": "dagster/partition", "value": body.partition})
        params = {"selector": selector, "runConfigData": body.run_config, "executionMetadata": {"tags": tags}}
        result = (await self._gql(LAUNCH, {"p": params}))["launchRun"]
        kind = result["__typename"]
        if kind != "LaunchRunSuccess":
            messages = [e["message"] for e in result.get("errors") or []] or [result.get("message") or kind]
            status = 422 if kind in ("RunConfigValidationInvalid", "InvalidSubsetError") else 502
            await self.services.record_decision(ctx, event="launch", decision="error", operation=operation,
                                                reason=kind, targets={"jobs": [job]}, status=status)
            if status == 502:
                # Dagster's internal error text stays in Dagster; the client gets the kind
                return refusal(502, f"Dagster did not launch the run ({kind})"), None
            return JSONResponse({"error": kind, "messages": messages[:20]}, status_code=422), None
        run_id = result["run"]["runId"]
        await self.services.record_decision(ctx, event="launch", decision="allow", operation=operation,
                                            targets={"jobs": [job]}, run_id=run_id, status=201)
        return JSONResponse({"run_id": run_id, "pipeline": name, "job": job, "replayed": False,
                             "request_id": ctx.request_id}, status_code=201), run_id

    async def _selector(self, job: str) -> dict[str, str] | None:
        data = await self._gql(REPOSITORIES)
        for repo in data["repositoriesOrError"].get("nodes") or []:
            if any(j["name"] == job for j in repo["jobs"]):
                return {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                        "pipelineName": job}
        return None

    async def logs(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        from aggregator.logs.search import LogQuery, search_logs

        principal = ctx.principal
        if principal is None:
            raise RuntimeError("logs route reached without a principal")
        request = Request(ctx.scope, receive)
        params = dict(request.query_params)
        allowed = {"pipeline", "run_id", "level", "text", "since", "until", "limit", "cursor"}
        if set(params) - allowed:
            return await refusal(400, f"unknown parameter(s) {sorted(set(params) - allowed)}; allowed: "
                                      f"{', '.join(sorted(allowed))}")(ctx.scope, receive, send)
        try:
            query = LogQuery.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            return await refusal(400, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")(ctx.scope, receive, send)
        operation = f"GET {ctx.path}"
        if principal.scope is not None and (query.pipeline is None or query.pipeline not in principal.scope):
            return await self.services.refuse(
                ctx, receive, send, 403, "logs", operation,
                "a scoped grant searches one of its pipelines: pass pipeline=<name>",
                f"viewer:logs on pipelines:{query.pipeline or '*'}")
        if self.dagster_home is None:
            return await refusal(503, "log search is not configured on this proxy (DAGSTER_HOME)")(
                ctx.scope, receive, send)
        page = await self.services.run_io(search_logs, self._dagster_instance(), query)
        await self.services.record_decision(ctx, event="logs", decision="allow", operation=operation, audit=False)
        await JSONResponse({"lines": [line.to_json() for line in page.lines], "next_cursor": page.next_cursor},
                           headers={"cache-control": "no-store"})(ctx.scope, receive, send)

    def _dagster_instance(self) -> Any:
        if self._instance is None:
            import dagster as dg

            self._instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        return self._instance

    async def metrics(self, ctx: RequestContext, receive: Receive, send: Send) -> None:
        from prometheus_client import generate_latest

        principal = ctx.principal
        if principal is None:
            raise RuntimeError("metrics route reached without a principal")
        if principal.scope is not None:
            # route and pipeline labels name every pipeline: a scoped grant must not read them
            return await self.services.refuse(ctx, receive, send, 403, "metrics", f"GET {ctx.path}",
                                              "metrics need an unscoped grant", "viewer:metrics (unscoped)")
        body = generate_latest(PROXY_REGISTRY)
        await Response(body, media_type="text/plain; version=0.0.4; charset=utf-8",
                       headers={"cache-control": "no-store"})(ctx.scope, receive, send)

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()


