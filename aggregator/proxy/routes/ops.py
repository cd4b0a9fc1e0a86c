"""Dagster as the trigger and log search see it: its GraphQL API (find, describe and launch a job) and its
event log (for `/api/logs`). The HTTP faces are typed routes of the management API (api/run_routes.py);
this module holds no access decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from aggregator.proxy.context import Services
from aggregator.proxy.storage.idempotency import IdempotencyKeys

IDEMPOTENCY_TAG = "aggregator/idempotency_key"
TRIGGERED_BY_TAG = "aggregator/triggered_by"

REPOSITORIES = """{ repositoriesOrError { __typename ... on RepositoryConnection {
  nodes { name location { name } jobs { name } } } } }"""
JOB_OPS = """query JobOps($s: PipelineSelector!) { pipelineOrError(params: $s) { __typename
  ... on Pipeline { solidHandles { handleID } } } }"""
RUNS_WITH_TAG = """query Runs($f: RunsFilter) { runsOrError(filter: $f, limit: 1) { __typename
  ... on Runs { results { runId } } } }"""
LAUNCH = """mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on PythonError { message } ... on InvalidSubsetError { message } ... on PipelineNotFoundError { message }
  ... on RunConflict { message } ... on UnauthorizedError { message } } }"""


class UpstreamError(Exception):
    """Dagster's GraphQL API did not answer as expected."""


@dataclass(frozen=True)
class Job:
    """A job found in a code location, with the ops (the pipeline's assets) it runs."""

    selector: dict[str, str]
    ops: frozenset[str]


class DagsterOps:
    def __init__(self, services: Services, client: httpx.AsyncClient, dagster_home: str | None = None) -> None:
        self.services, self.client = services, client
        self.graphql_url = f"{services.settings.upstream}{services.settings.path_prefix}/graphql"
        # /api/logs reads Dagster's event log directly: only when the proxy is given the instance (DAGSTER_HOME)
        self.dagster_home = dagster_home
        self._instance: Any = None
        # Idempotency-Key claims in the proxy database: one key, one run, across every replica.
        self.keys = IdempotencyKeys(services.store.engine)

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self.client.post(self.graphql_url, json={"query": query, "variables": variables or {}},
                                              timeout=30)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamError(f"Dagster GraphQL unreachable: {type(exc).__name__}") from None
        if body.get("errors") or "data" not in body:
            raise UpstreamError("Dagster GraphQL refused the request")
        return dict(body["data"])

    async def run_with_tag(self, key: str, value: str) -> str | None:
        data = await self.gql(RUNS_WITH_TAG, {"f": {"tags": [{"key": key, "value": value}]}})
        found = data["runsOrError"].get("results") or []
        return str(found[0]["runId"]) if found else None

    async def job(self, name: str) -> Job | None:
        data = await self.gql(REPOSITORIES)
        for repo in data["repositoriesOrError"].get("nodes") or []:
            if any(j["name"] == name for j in repo["jobs"]):
                selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                            "pipelineName": name}
                described = (await self.gql(JOB_OPS, {"s": selector}))["pipelineOrError"]
                handles = described.get("solidHandles") or []
                return Job(selector, frozenset(h["handleID"] for h in handles))
        return None

    async def launch(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict((await self.gql(LAUNCH, {"p": params}))["launchRun"])

    def instance(self) -> Any:
        if self._instance is None:
            import dagster as dg

            self._instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        return self._instance

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
