"""What a mutation acts on (jobs, schedules, sensors, assets, runs), and whether that lies in a scope.

Targets come from the coerced arguments the proxy authorized, never from hints. For grants limited to some
pipelines, targets are mapped to asset groups through a catalog read from Dagster itself; a target that
cannot be mapped is out of scope (deny by default).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)

CATALOG_QUERY = """query AggregatorProxyCatalog { workspaceOrError { ... on Workspace { locationEntries {
  locationOrLoadError { ... on RepositoryLocation { repositories {
    jobs { name } schedules { name pipelineName } sensors { name targets { pipelineName } }
    assetNodes { assetKey { path } groupName jobNames } } } } } } } }"""
RUN_QUERY = "query AggregatorProxyRun($id: ID!) { runOrError(runId: $id) { ... on Run { jobName } } }"


def _key(path: list[str]) -> str:
    return "/".join(path)


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def extract_targets(field_name: str, args: dict[str, Any]) -> dict[str, list[str]]:
    """Targets named by one mutation's arguments, by kind."""
    out: dict[str, list[str]] = {}

    def add(kind: str, value: Any) -> None:
        if isinstance(value, str) and value:
            out.setdefault(kind, []).append(value)

    def add_selector(selector: Any) -> None:
        add("jobs", _dig(selector, "jobName") or _dig(selector, "pipelineName"))
        for key in _dig(selector, "assetSelection") or []:
            add("assets", _key(key.get("path", [])))

    for params in [args.get("executionParams"), *(args.get("executionParamsList") or [])]:
        add_selector(_dig(params, "selector"))
    add("runs", _dig(args, "reexecutionParams", "parentRunId"))
    add("runs", args.get("runId"))
    for run_id in args.get("runIds") or []:
        add("runs", run_id)
    backfill = args.get("backfillParams") or {}
    add("partition_sets", _dig(backfill, "selector", "partitionSetName"))
    for key in backfill.get("assetSelection") or []:
        add("assets", _key(key.get("path", [])))
    for item in [*(backfill.get("partitionsByAssets") or []), *(args.get("assetPartitionRanges") or [])]:
        add("assets", _key(_dig(item, "assetKey", "path") or []))
    add("backfills", args.get("backfillId"))
    for name in ("scheduleSelector", "selectorData"):
        add("schedules", _dig(args, name, "scheduleName"))
        add("sensors", _dig(args, name, "sensorName"))
    add("sensors", _dig(args, "sensorSelector", "sensorName"))
    add("assets", _key(_dig(args, "eventParams", "assetKey", "path") or []))
    add("partitions_defs", args.get("partitionsDefName"))
    for kind in ("id", "scheduleOriginId", "scheduleSelectorId", "jobOriginId", "jobSelectorId"):
        add("instigator_ids", args.get(kind))
    if field_name == "reexecutePartitionBackfill":
        out.pop("runs", None)
        add("backfills", _dig(args, "reexecutionParams", "parentRunId"))
    return out


@dataclass
class Catalog:
    job_groups: dict[str, set[str]] = field(default_factory=dict)
    schedule_jobs: dict[str, set[str]] = field(default_factory=dict)
    sensor_jobs: dict[str, set[str]] = field(default_factory=dict)
    asset_groups: dict[str, str] = field(default_factory=dict)
    fetched_at: float = 0.0

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Catalog:
        cat = cls(fetched_at=time.monotonic())
        for entry in _dig(data, "data", "workspaceOrError", "locationEntries") or []:
            for repo in _dig(entry, "locationOrLoadError", "repositories") or []:
                for job in repo.get("jobs") or []:
                    cat.job_groups.setdefault(job["name"], set())
                for node in repo.get("assetNodes") or []:
                    key, group = _key(node["assetKey"]["path"]), node.get("groupName") or ""
                    cat.asset_groups[key] = group
                    for job in node.get("jobNames") or []:
                        cat.job_groups.setdefault(job, set()).add(group)
                for sched in repo.get("schedules") or []:
                    cat.schedule_jobs.setdefault(sched["name"], set()).add(sched["pipelineName"])
                for sensor in repo.get("sensors") or []:
                    jobs = {t["pipelineName"] for t in sensor.get("targets") or []}
                    cat.sensor_jobs.setdefault(sensor["name"], set()).update(jobs)
        return cat

    def job_in(self, job: str, scope: frozenset[str]) -> bool:
        if job in scope:
            return True
        groups = self.job_groups.get(job)
        # Dagster's implicit `__ASSET_JOB` spans every group: only in scope if all its groups are.
        return bool(groups) and groups <= scope  # type: ignore[operator]


class ScopeResolver:
    """Reads the catalog from the upstream webserver (cached) to decide scope membership."""

    def __init__(self, client: httpx.AsyncClient, graphql_url: str, ttl_s: float = 30.0) -> None:
        self.client, self.graphql_url, self.ttl_s = client, graphql_url, ttl_s
        self._catalog: Catalog | None = None

    async def _post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = await self.client.post(self.graphql_url, json={"query": query, "variables": variables or {}},
                                      headers={"x-aggregator-user": "aggregator-proxy"})
        resp.raise_for_status()
        return dict(resp.json())

    async def catalog(self) -> Catalog:
        if self._catalog is None or time.monotonic() - self._catalog.fetched_at > self.ttl_s:
            self._catalog = Catalog.from_response(await self._post(CATALOG_QUERY))
        return self._catalog

    async def out_of_scope(self, targets: dict[str, list[str]], scope: frozenset[str]) -> list[str]:
        """Targets not inside `scope`, as `kind:name`; an empty target list is itself out of scope."""
        if not any(targets.values()):
            return ["(no resolvable target)"]
        cat = await self.catalog()
        bad: list[str] = []
        for kind, values in targets.items():
            for value in values:
                if kind == "jobs":
                    ok = cat.job_in(value, scope)
                elif kind == "assets":
                    ok = value in scope or cat.asset_groups.get(value) in scope
                elif kind in ("schedules", "sensors"):
                    jobs = (cat.schedule_jobs if kind == "schedules" else cat.sensor_jobs).get(value)
                    ok = value in scope or (bool(jobs) and all(cat.job_in(j, scope) for j in jobs or ()))
                elif kind == "runs":
                    job = _dig(await self._post(RUN_QUERY, {"id": value}), "data", "runOrError", "jobName")
                    ok = isinstance(job, str) and cat.job_in(job, scope)
                else:
                    ok = False  # backfills, partition sets, instigator ids: not mapped, so not allowed
                if not ok:
                    bad.append(f"{kind}:{value}")
        return bad
