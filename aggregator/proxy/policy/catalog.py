"""Whether targets lie inside a scope, judged by kind through a catalog read from Dagster itself.

A scope names pipelines, i.e. asset groups (a pipeline's job is `<pipeline>_job`, selecting its group). An
asset is inside when its group is; a check when its asset is; a job when every asset it holds is (so a job
without assets, or one Dagster does not know, is outside); a schedule, sensor or partition set when the jobs
it targets are; a run when what it executed is. A name is never compared with the scope across kinds: scope
`sales` does not cover an asset or sensor that happens to be called `sales`. A backfill is inside when what it
runs is (its job, or for an asset backfill its selection). Instigator ids, partitions definitions and
locations are not mapped to pipelines and are outside every scope.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from aggregator.proxy.policy.target_fields import Kind
from aggregator.proxy.policy.targets import Target, asset_key

log = logging.getLogger(__name__)

CATALOG_QUERY = """query AggregatorProxyCatalog { workspaceOrError { ... on Workspace { locationEntries {
  locationOrLoadError { ... on RepositoryLocation { repositories {
    jobs { name } schedules { name pipelineName } sensors { name targets { pipelineName } }
    partitionSets { name pipelineName }
    assetNodes { assetKey { path } groupName jobNames } } } } } } } }"""
_RUN_FIELDS = "jobName assetSelection { path } assetCheckSelection { name assetKey { path } }"
_RUNS_FIELD = f"""runsOrError(filter: {{runIds: $ids}}, limit: $limit) {{ __typename ... on Runs {{ results {{
  runId solidSelection {_RUN_FIELDS} }} }} }}"""
_BACKFILL_FIELD = """b{i}: partitionBackfillOrError(backfillId: $b{i}) {{ __typename ... on PartitionBackfill {{
  id partitionSet {{ pipelineName }} {fields} }} }}"""


def lookup_query(with_runs: bool, backfills: int) -> str:
    """One document for every run and backfill a request names (the proxy's only per-request look-up)."""
    defs = (["$ids: [String]", "$limit: Int"] if with_runs else []) + [f"$b{i}: String!" for i in range(backfills)]
    fields = ([_RUNS_FIELD] if with_runs else []) + [
        _BACKFILL_FIELD.format(i=i, fields=_RUN_FIELDS) for i in range(backfills)]
    return f"query AggregatorProxyRuns({', '.join(defs)}) {{ {' '.join(fields)} }}"


# A scoped terminate/delete of more runs than this is refused outright: all ids are resolved in one upstream
# query, and a bound keeps that query, the refusal and the audit record small.
MAX_SCOPED_RUN_IDS = 500
MAX_SCOPED_BACKFILL_IDS = 20
IMPLICIT_ASSET_JOB = "__ASSET_JOB"


class ScopeUnavailable(RuntimeError):
    """The upstream catalog or run look-up failed, so membership cannot be decided (the request is refused)."""


class TooManyRuns(ValueError):
    """More run ids than a scoped grant may name in one request."""

    def __init__(self, count: int, what: str = "run", limit: int = MAX_SCOPED_RUN_IDS) -> None:
        super().__init__(f"{count} {what} ids in one request; a grant limited to some pipelines may name at most "
                         f"{limit} (send them in smaller batches)")


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class RunInfo:
    """What a run executed: its job and, when subset, its asset/check/op selection."""

    job: str
    assets: tuple[str, ...]
    checks: tuple[str, ...]
    op_subset: bool

    @classmethod
    def from_graphql(cls, run: dict[str, Any]) -> RunInfo:
        """A run, or a backfill (whose job is its partition set's, or none for an asset backfill)."""
        job = run.get("jobName") or _dig(run, "partitionSet", "pipelineName")
        return cls(job=str(job or ""),
                   assets=tuple(asset_key(a) for a in run.get("assetSelection") or []),
                   checks=tuple(f"{asset_key(c.get('assetKey') or {})}:{c.get('name')}"
                                for c in run.get("assetCheckSelection") or []),
                   op_subset=bool(run.get("solidSelection")))


@dataclass
class Catalog:
    job_groups: dict[str, set[str]] = field(default_factory=dict)
    schedule_jobs: dict[str, set[str]] = field(default_factory=dict)
    sensor_jobs: dict[str, set[str]] = field(default_factory=dict)
    partition_set_jobs: dict[str, set[str]] = field(default_factory=dict)
    asset_groups: dict[str, set[str]] = field(default_factory=dict)
    fetched_at: float = 0.0

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Catalog:
        cat = cls(fetched_at=time.monotonic())
        for entry in _dig(data, "data", "workspaceOrError", "locationEntries") or []:
            for repo in _dig(entry, "locationOrLoadError", "repositories") or []:
                for job in repo.get("jobs") or []:
                    cat.job_groups.setdefault(job["name"], set())
                for node in repo.get("assetNodes") or []:
                    key, group = asset_key(node["assetKey"]), node.get("groupName") or ""
                    # Union over locations: a key defined twice is inside only if every definition is.
                    cat.asset_groups.setdefault(key, set()).add(group)
                    for job in node.get("jobNames") or []:
                        cat.job_groups.setdefault(job, set()).add(group)
                for sched in repo.get("schedules") or []:
                    cat.schedule_jobs.setdefault(sched["name"], set()).add(sched["pipelineName"])
                for sensor in repo.get("sensors") or []:
                    jobs = {t["pipelineName"] for t in sensor.get("targets") or []}
                    # A sensor without job targets still gets an entry: an empty set is never inside.
                    cat.sensor_jobs.setdefault(sensor["name"], set()).update(jobs)
                for pset in repo.get("partitionSets") or []:
                    cat.partition_set_jobs.setdefault(pset["name"], set()).add(pset["pipelineName"])
        return cat

    def asset_in(self, key: str, scope: frozenset[str]) -> bool:
        groups = self.asset_groups.get(key)
        return bool(groups) and groups <= scope  # type: ignore[operator]

    def check_in(self, check: str, scope: frozenset[str]) -> bool:
        asset, _, _name = check.rpartition(":")  # check names are [A-Za-z0-9_]+, asset keys may hold ':'
        return self.asset_in(asset, scope)

    def job_in(self, job: str, scope: frozenset[str]) -> bool:
        """The whole job: every asset it holds is inside (Dagster's `__ASSET_JOB` spans every group)."""
        groups = self.job_groups.get(job)
        return bool(groups) and groups <= scope  # type: ignore[operator]

    def launch_in(self, job: str, assets: Sequence[str], checks: Sequence[str], op_subset: bool,
                  scope: frozenset[str]) -> bool:
        """One launch of `job` subset to `assets`/`checks` (empty: no asset subset) or by ops.

        Dagster builds an asset subset from the whole repository's asset graph, not the job's, so the
        selection is judged on its own; the job must be inside too, except an implicit asset job
        (`__ASSET_JOB*`, the UI's Materialize button) whose run executes exactly the selection."""
        if not all(self.asset_in(a, scope) for a in assets) or not all(self.check_in(c, scope) for c in checks):
            return False
        if self.job_in(job, scope):
            return True
        return job.startswith(IMPLICIT_ASSET_JOB) and bool(assets or checks) and not op_subset

    def executed_in(self, info: RunInfo, scope: frozenset[str]) -> bool:
        """A run or backfill: what it executes (an asset backfill has no job, only its selection) is inside."""
        if info.job:
            return self.launch_in(info.job, info.assets, info.checks, info.op_subset, scope)
        return bool(info.assets or info.checks) and self.launch_in(IMPLICIT_ASSET_JOB, info.assets, info.checks,
                                                                    False, scope)

    def jobs_in(self, jobs: set[str] | None, scope: frozenset[str]) -> bool:
        return bool(jobs) and all(self.job_in(j, scope) for j in jobs or ())


def _grouped(targets: Iterable[Target]) -> dict[str, list[Target]]:
    out: dict[str, list[Target]] = {}
    for t in targets:
        out.setdefault(t.launch, []).append(t)
    return out


def outside(cat: Catalog, runs: dict[str, RunInfo], targets: Sequence[Target], scope: frozenset[str]) -> list[Target]:
    """The targets that lie outside `scope` (pure: the catalog and runs are already fetched)."""
    bad: list[Target] = []
    for group in _grouped(targets).values():
        assets = [t.name for t in group if t.kind is Kind.asset]
        checks = [t.name for t in group if t.kind is Kind.asset_check]
        op_subset = any(t.kind is Kind.op_subset for t in group)
        has_job = any(t.kind is Kind.job for t in group)
        # A launch selector without a job name: there is no job to judge its subset against, so refuse it
        # whole rather than judge the subset alone (Dagster would fail it anyway).
        jobless_launch = not has_job and any(t.field.startswith("JobOrPipelineSelector.") for t in group)
        for t in group:
            if jobless_launch:
                ok = False
            elif t.kind is Kind.job:
                ok = cat.launch_in(t.name, assets, checks, op_subset, scope)
            elif t.kind is Kind.asset:
                ok = cat.asset_in(t.name, scope)
            elif t.kind is Kind.asset_check:
                ok = cat.check_in(t.name, scope)
            elif t.kind is Kind.op_subset:
                ok = has_job  # judged with the job it subsets; without one there is nothing to judge
            elif t.kind is Kind.schedule:
                ok = cat.jobs_in(cat.schedule_jobs.get(t.name), scope)
            elif t.kind is Kind.sensor:
                ok = cat.jobs_in(cat.sensor_jobs.get(t.name), scope)
            elif t.kind is Kind.partition_set:
                ok = cat.jobs_in(cat.partition_set_jobs.get(t.name), scope)
            elif t.kind in (Kind.run, Kind.backfill):
                info = runs.get(f"{t.kind.value}:{t.name}")
                ok = info is not None and cat.executed_in(info, scope)
            else:
                ok = False  # instigator ids, partitions definitions, locations: not mapped
            if not ok:
                bad.append(t)
    return bad


class ScopeResolver:
    """Reads the catalog (cached) and the named runs (one query per request) from the upstream webserver."""

    def __init__(self, client: httpx.AsyncClient, graphql_url: str, ttl_s: float = 30.0) -> None:
        self.client, self.graphql_url, self.ttl_s = client, graphql_url, ttl_s
        self._catalog: Catalog | None = None
        # One refresh at a time: concurrent requests after expiry wait for it instead of each asking Dagster.
        self._refresh = asyncio.Lock()

    async def _post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = await self.client.post(self.graphql_url, json={"query": query, "variables": variables or {}},
                                          headers={"x-aggregator-user": "aggregator-proxy"})
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ScopeUnavailable(f"could not read the catalog from Dagster: {type(exc).__name__}") from exc
        if not isinstance(body, dict) or body.get("errors"):
            raise ScopeUnavailable("Dagster answered the catalog query with errors")
        return body

    def _fresh(self) -> Catalog | None:
        if self._catalog is None or time.monotonic() - self._catalog.fetched_at > self.ttl_s:
            return None
        return self._catalog

    async def catalog(self) -> Catalog:
        cat = self._fresh()
        if cat is None:
            async with self._refresh:
                cat = self._fresh()
                if cat is None:
                    cat = self._catalog = Catalog.from_response(await self._post(CATALOG_QUERY))
        return cat

    async def lookup(self, run_ids: Sequence[str], backfill_ids: Sequence[str]) -> dict[str, RunInfo]:
        """Runs and backfills by `runs:<id>` / `backfills:<id>`, in one upstream query; unknown ids are absent."""
        if not run_ids and not backfill_ids:
            return {}
        if len(run_ids) > MAX_SCOPED_RUN_IDS:
            raise TooManyRuns(len(run_ids))
        if len(backfill_ids) > MAX_SCOPED_BACKFILL_IDS:
            raise TooManyRuns(len(backfill_ids), "backfill", MAX_SCOPED_BACKFILL_IDS)
        variables: dict[str, Any] = {f"b{i}": b for i, b in enumerate(backfill_ids)}
        if run_ids:
            variables.update(ids=list(run_ids), limit=len(run_ids))
        data = (await self._post(lookup_query(bool(run_ids), len(backfill_ids)), variables)).get("data") or {}
        wanted = set(run_ids)
        out = {f"runs:{r['runId']}": RunInfo.from_graphql(r)
               for r in _dig(data, "runsOrError", "results") or [] if r.get("runId") in wanted}
        for i, backfill_id in enumerate(backfill_ids):
            found = data.get(f"b{i}") or {}
            if found.get("__typename") == "PartitionBackfill" and found.get("id") == backfill_id:
                out[f"backfills:{backfill_id}"] = RunInfo.from_graphql(found)
        return out

    async def outside(self, targets: Sequence[Target], scope: frozenset[str]) -> list[Target]:
        """Targets not inside `scope`; one catalog read (cached) and at most one run/backfill query."""
        run_ids = sorted({t.name for t in targets if t.kind is Kind.run})
        backfill_ids = sorted({t.name for t in targets if t.kind is Kind.backfill})
        cat = await self.catalog()
        return outside(cat, await self.lookup(run_ids, backfill_ids), targets, scope)

    async def out_of_scope(self, targets: dict[str, list[str]], scope: frozenset[str]) -> list[str]:
        """Older interface kept for callers that pass targets by kind (the report route): `kind:name` outside."""
        flat = [Target(Kind(kind), name, "", kind) for kind, names in targets.items() for name in names]
        if not flat:
            return ["(no resolvable target)"]
        try:
            return [f"{t.kind.value}:{t.name}" for t in await self.outside(flat, scope)]
        except ScopeUnavailable as exc:
            log.warning("scope check failed: %s", exc)
            return ["(scope check unavailable)"]

