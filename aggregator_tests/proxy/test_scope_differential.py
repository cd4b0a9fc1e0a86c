"""Differential test of the scope check: generated launches, re-executions, backfills and terminations sent by a
launcher scoped to `sales`, judged by what Dagster actually did.

For every generated request the proxy allows, every run (and backfill) it created must lie inside `sales`
(read back from Dagster directly: job, asset selection, check selection), every run it cancelled must have
been inside `sales`, and its audit record must name the jobs Dagster ran. A refused request must change
nothing. Group membership is read from Dagster's asset nodes, not from the proxy's catalog. Bounded by
`SCOPE_DIFF_EXAMPLES` (default 120, about a minute: runs stay queued, nothing executes).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy.policy_stack import LOCATION, REPO, PolicyStack, policy_stack, selector

pytestmark = pytest.mark.slow

SCOPE = {"sales"}
USER = "sales-launcher"
EXAMPLES = int(os.environ.get("SCOPE_DIFF_EXAMPLES", "120"))

# Weighted towards the scope, so that enough generated requests are allowed to check what Dagster then did.
ASSETS = [["sales", "orders"], ["sales", "daily_sales"], ["sales", "region_leaderboard"]] * 3 + [
    ["shop", "orders"], ["shop", "customers"], ["shop", "revenue_by_country"], ["sales"], ["shop"]]
JOBS = ["sales_job"] * 4 + ["__ASSET_JOB"] * 3 + ["shop_job", "sales", "shop", "no_such_job"]
OPS = ["sales__orders", "shop__orders"]
RESULT = "__typename ... on LaunchRunSuccess { run { runId } }"
NODES = "{ assetNodes { assetKey { path } groupName jobNames } }"
BACKFILLS = """{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status
  assetSelection { path } } } } }"""
LAUNCH_BACKFILL = ("mutation B($b: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $b) { "
                   "... on LaunchBackfillSuccess { backfillId } } }")
STATUSES = "{ runsOrError { ... on Runs { results { runId status } } } }"


@dataclass
class World:
    stack: PolicyStack
    groups: dict[str, str]  # asset key -> group, from Dagster
    job_groups: dict[str, set[str]]
    checks: list[dict[str, Any]]  # AssetCheckHandleInput values of real checks, both pipelines
    pool: list[str]  # run ids of every kind, launched by an admin
    backfills: list[str]  # asset backfills inside, outside and across the scope, launched by an admin

    def asset_in(self, path: list[str]) -> bool:
        return self.groups.get("/".join(path)) in SCOPE

    def backfill_in(self, backfill: dict[str, Any]) -> bool:
        """Ground truth for the asset backfills here: every asset it selects lies in `sales`."""
        return bool(backfill["assetSelection"]) and all(self.asset_in(a["path"]) for a in backfill["assetSelection"])

    def run_in(self, run: dict[str, Any]) -> bool:
        """Ground truth: what the run executes lies in `sales`."""
        assets = run["assetSelection"] or []
        checks = run["assetCheckSelection"] or []
        if not all(self.asset_in(a["path"]) for a in assets):
            return False
        if not all(self.asset_in(c["assetKey"]["path"]) for c in checks):
            return False
        groups = self.job_groups.get(run["jobName"], set())
        if groups and groups <= SCOPE:
            return True
        return run["jobName"].startswith("__ASSET_JOB") and bool(assets or checks) and not run["solidSelection"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for stack in policy_stack(tmp_path_factory.mktemp("scope-differential")):
        nodes = stack.upstream(NODES)["assetNodes"]
        groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        job_groups: dict[str, set[str]] = {}
        for n in nodes:
            for job in n["jobNames"]:
                job_groups.setdefault(job, set()).add(n["groupName"])
        checks = [{"assetKey": {"path": p}, "name": name}
                  for p in (["sales", "orders"], ["shop", "orders"]) for name in stack.checks_of(p)]
        pool: list[str] = []
        launches: list[dict[str, Any]] = [
            selector("sales_job"), selector("shop_job"),
            selector("__ASSET_JOB", assetSelection=[{"path": ["sales", "orders"]}]),
            selector("__ASSET_JOB", assetSelection=[{"path": ["shop", "orders"]}]),
            selector("sales_job", assetCheckSelection=[checks[-1]]),
        ]
        for sel in launches * 2:
            body = stack.post("admin", f"mutation L($p: ExecutionParams!) {{ launchRun(executionParams: $p) "
                                       f"{{ {RESULT} }} }}", {"p": {"selector": sel}}).json()
            pool.append(body["data"]["launchRun"]["run"]["runId"])
        backfills = []
        for assets in ([["sales", "orders"]], [["shop", "orders"]], [["sales", "orders"], ["shop", "orders"]]) * 2:
            body = stack.post("admin", LAUNCH_BACKFILL, {"b": {"assetSelection": [{"path": p} for p in assets],
                                                               "allPartitions": True}}).json()
            backfills.append(body["data"]["launchPartitionBackfill"]["backfillId"])
        yield World(stack, groups, job_groups, checks, pool, backfills)


def literal(value: Any) -> str:
    """A JSON value as a GraphQL input literal (strings only; enums always travel in variables)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def asset_keys() -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.sampled_from(ASSETS), max_size=3, unique_by=tuple).map(lambda ps: [{"path": p} for p in ps])


@st.composite
def selectors(draw: st.DrawFn, world: World) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["assetSelection"] = draw(asset_keys())
    if draw(st.integers(0, 3)) == 0:
        extra["assetCheckSelection"] = draw(st.lists(st.sampled_from(world.checks), max_size=2))
    if draw(st.integers(0, 5)) == 0:
        extra["solidSelection"] = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=2, unique=True))
    job = draw(st.none() | st.sampled_from(JOBS))
    pipeline = draw(st.none() | st.sampled_from(JOBS)) if job is None or draw(st.integers(0, 2)) == 0 else None
    return selector(job, pipeline, **extra)


@st.composite
def execution_params(draw: st.DrawFn, world: World, reexecute: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"selector": draw(selectors(world))}
    if reexecute:
        parent = draw(st.sampled_from(world.pool))
        params["executionMetadata"] = {"parentRunId": parent, "rootRunId": draw(st.sampled_from([parent, *world.pool]))}
    return params


@dataclass
class Field:
    """One root field: its selection text, the variable definitions it needs, and their values."""

    text: str
    var_defs: dict[str, str]
    variables: dict[str, Any]


def _arg(name: str, type_: str, value: Any, var: str, inline: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    if inline:
        return f"{name}: {literal(value)}", {}, {}
    return f"{name}: ${var}", {var: type_}, {var: value}


@st.composite
def fields(draw: st.DrawFn, world: World, n: int) -> Field:
    """One mutation, with its argument inline or in a variable (named after the field's position `n`)."""
    kind = draw(st.sampled_from(["launchRun", "launchPipelineExecution", "launchMultipleRuns",
                                 "launchRunReexecution", "launchPipelineReexecution", "launchPartitionBackfill",
                                 "terminateRuns", "terminateRun", "cancelPartitionBackfill",
                                 "resumePartitionBackfill", "reexecutePartitionBackfill"]))
    inline = draw(st.booleans())
    out = RESULT
    if kind in ("launchRun", "launchPipelineExecution"):
        arg = _arg("executionParams", "ExecutionParams!", draw(execution_params(world, False)), f"p{n}", inline)
    elif kind == "launchMultipleRuns":
        plist = draw(st.lists(execution_params(world, False), min_size=1, max_size=3))
        arg = _arg("executionParamsList", "[ExecutionParams!]!", plist, f"l{n}", inline)
        out = f"__typename ... on LaunchMultipleRunsResult {{ launchMultipleRunsResult {{ {RESULT} }} }}"
    elif kind in ("launchRunReexecution", "launchPipelineReexecution"):
        if draw(st.booleans()):
            arg = _arg("executionParams", "ExecutionParams", draw(execution_params(world, True)), f"p{n}", inline)
        else:  # the strategy is an enum: always a variable
            reexec = {"parentRunId": draw(st.sampled_from(world.pool)), "strategy": "ALL_STEPS"}
            arg = _arg("reexecutionParams", "ReexecutionParams", reexec, f"r{n}", False)
    elif kind == "launchPartitionBackfill":
        backfill: dict[str, Any] = {"allPartitions": True}
        if draw(st.booleans()):
            backfill["assetSelection"] = draw(asset_keys())
        else:
            backfill["selector"] = {"partitionSetName": f"{draw(st.sampled_from(JOBS))}_partition_set",
                                    "repositorySelector": {"repositoryName": REPO, "repositoryLocationName": LOCATION}}
        arg = _arg("backfillParams", "LaunchBackfillParams!", backfill, f"b{n}", inline)
        out = "__typename"
    elif kind in ("cancelPartitionBackfill", "resumePartitionBackfill"):
        backfill_id = draw(st.sampled_from(world.backfills) | st.just("nosuchbf"))
        arg = _arg("backfillId", "String!", backfill_id, f"bf{n}", inline)
        out = "__typename"
    elif kind == "reexecutePartitionBackfill":
        reexec = {"parentRunId": draw(st.sampled_from(world.backfills)), "strategy": "ALL_STEPS"}
        arg = _arg("reexecutionParams", "ReexecutionParams", reexec, f"r{n}", False)
        out = "__typename"
    else:
        known_or_not = st.sampled_from([*world.pool, "not-a-run-id"]) | st.builds(lambda: str(uuid.uuid4()))
        ids = draw(st.lists(known_or_not, min_size=1, max_size=4))
        if kind == "terminateRun":
            arg = _arg("runId", "String!", ids[0], f"id{n}", inline)
        else:
            arg = _arg("runIds", "[String!]!", ids, f"ids{n}", inline)
        out = "__typename"
    text, var_defs, variables = arg
    return Field(f"f{n}: {kind}({text}) {{ {out} }}", var_defs, variables)


@st.composite
def requests(draw: st.DrawFn, world: World) -> tuple[str, dict[str, Any]]:
    """(document, variables): one or two aliased mutations, directly or through a fragment on Mutation."""
    parts = [draw(fields(world, n)) for n in range(draw(st.integers(1, 2)))]
    var_defs = {k: v for p in parts for k, v in p.var_defs.items()}
    variables = {k: v for p in parts for k, v in p.variables.items()}
    header = "(" + ", ".join(f"${k}: {v}" for k, v in var_defs.items()) + ")" if var_defs else ""
    body = " ".join(p.text for p in parts)
    if draw(st.booleans()):
        return f"mutation M{header} {{ ...F }} fragment F on Mutation {{ {body} }}", variables
    return f"mutation M{header} {{ {body} }}", variables


def test_scoped_launcher_never_gets_dagster_to_act_outside_its_scope(world: World) -> None:
    stack = world.stack
    seen = {"allowed": 0, "denied": 0, "runs": 0, "backfills": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        query, variables = data.draw(requests(world))
        runs_before = stack.upstream(STATUSES)["runsOrError"]["results"]
        backfills_before = {b["id"]: b["status"]
                            for b in stack.upstream(BACKFILLS)["partitionBackfillsOrError"]["results"]}
        resp = stack.post(USER, query, variables)
        runs_after = stack.upstream(STATUSES)["runsOrError"]["results"]
        backfills = stack.upstream(BACKFILLS)["partitionBackfillsOrError"]["results"]
        status_before = {r["runId"]: r["status"] for r in runs_before}
        new_ids = {r["runId"] for r in runs_after} - set(status_before)
        cancelled = {r["runId"] for r in runs_after
                     if r["runId"] in status_before and r["status"] != status_before[r["runId"]]}
        # New backfills, and existing ones whose status changed (cancelled or resumed).
        touched = [b for b in backfills if backfills_before.get(b["id"]) != b["status"]]
        if resp.status_code in (400, 403):  # the proxy's refusals; Dagster answers its own errors with 200/500
            assert not new_ids and not cancelled and not touched, (query, variables, resp.text)
            seen["denied"] += 1
            return
        seen["allowed"] += 1
        seen["runs"] += len(new_ids)
        runs = stack.runs(new_ids | cancelled)
        outside = [r for r in runs if not world.run_in(r)]
        assert outside == [], (query, variables, outside)
        assert [b for b in touched if not world.backfill_in(b)] == [], (query, variables, touched)
        seen["backfills"] += len(touched)
        if new_ids:
            records = [r for r in stack.proxy.audit.query(AuditQuery(username=USER, decision="allow", limit=5))
                       if r.run_id and set(r.run_id.split(",")) & new_ids]
            assert records, "an allowed launch has an audit record with its run ids"
            audited = records[0].targets
            # Launches name their job; re-executions from a parent name the parent run, whose job is reused.
            named = set(audited.get("jobs", []))
            named |= {r["jobName"] for r in stack.runs({i for i in audited.get("runs", []) if i[:3] != "..."})}
            executed = {r["jobName"] for r in runs if r["runId"] in new_ids}
            assert executed <= named, (query, variables, executed, audited)

    check()
    print("scope differential:", seen)
    # The generator must exercise both sides, or the test proves nothing.
    assert seen["allowed"] > 0 and seen["denied"] > 0 and seen["runs"] > 0, seen
