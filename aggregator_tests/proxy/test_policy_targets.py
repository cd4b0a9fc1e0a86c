"""Target extraction over Dagster's real schema, and scope membership by kind (pure, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.proxy.graphql_ops import GraphQLInspector
from aggregator.proxy.policy.catalog import Catalog, RunInfo, lookup_query, outside
from aggregator.proxy.policy.target_fields import Kind
from aggregator.proxy.policy.targets import MAX_AUDIT_NAMES, Target, audit_targets, extract_targets

SEL = '{repositoryName: "r", repositoryLocationName: "l", jobName: "sales_job", pipelineName: "shop_job"}'


def targets(inspector: GraphQLInspector, query: str, variables: dict[str, Any] | None = None) -> list[Target]:
    parsed = inspector.inspect(query)
    out: list[Target] = []
    for root in parsed.mutations:
        out += extract_targets(inspector.schema, root.name, inspector.arguments(root, variables))
    return out


def test_both_job_names_are_targets_and_the_audit_names_the_executed_one(inspector: GraphQLInspector) -> None:
    found = targets(inspector, f"mutation {{ a: launchRun(executionParams: {{selector: {SEL}}}) {{ __typename }} }}")
    assert {(t.kind, t.name) for t in found} == {(Kind.job, "sales_job"), (Kind.job, "shop_job")}
    assert audit_targets(found) == {"jobs": ["shop_job"]}


def test_launch_list_elements_are_judged_apart(inspector: GraphQLInspector) -> None:
    query = "mutation M($l: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $l) { __typename } }"
    sel = {"repositoryName": "r", "repositoryLocationName": "l"}
    found = targets(inspector, query, {"l": [
        {"selector": {**sel, "jobName": "__ASSET_JOB", "assetSelection": [{"path": ["sales", "orders"]}]}},
        {"selector": {**sel, "jobName": "__ASSET_JOB"}},
    ]})
    cat = Catalog(job_groups={"__ASSET_JOB": {"sales", "shop"}}, asset_groups={"sales/orders": {"sales"}})
    # The second launch is the whole implicit job: the first one's in-scope selection must not cover it.
    bad = outside(cat, {}, found, frozenset({"sales"}))
    assert [(t.name, t.launch) for t in bad] == [("__ASSET_JOB", "launchMultipleRuns.executionParamsList[1]")]


def test_checks_and_assets_are_targets(inspector: GraphQLInspector) -> None:
    query = ('mutation { launchRun(executionParams: {selector: {repositoryName: "r", repositoryLocationName: "l", '
             'jobName: "sales_job", assetCheckSelection: [{assetKey: {path: ["shop", "orders"]}, name: "c"}]}}) '
             "{ __typename } }")
    found = targets(inspector, query)
    assert (Kind.asset_check, "shop/orders:c") in {(t.kind, t.name) for t in found}
    cat = Catalog(job_groups={"sales_job": {"sales"}}, asset_groups={"shop/orders": {"shop"}})
    assert "shop/orders:c" in [t.name for t in outside(cat, {}, found, frozenset({"sales"}))]


@pytest.mark.parametrize("target, inside", [
    (Target(Kind.asset, "sales", "x", "f"), False),  # an asset named like the scope is not in it
    (Target(Kind.sensor, "sales", "x", "f"), False),
    (Target(Kind.job, "sales", "x", "f"), False),
    (Target(Kind.asset, "sales/orders", "x", "f"), True),
    (Target(Kind.sensor, "sales_sensor", "x", "f"), True),
    (Target(Kind.schedule, "shop_schedule", "x", "f"), False),
    (Target(Kind.run, "r-shop-check", "x", "f"), False),
    (Target(Kind.run, "r-sales", "x", "f"), True),
    (Target(Kind.backfill, "b", "x", "f"), False),  # unknown to Dagster
    (Target(Kind.backfill, "b-sales", "x", "f"), True),
    (Target(Kind.backfill, "b-mixed", "x", "f"), False),
    (Target(Kind.instigator_id, "abc", "x", "f"), False),
])
def test_membership_is_by_kind(target: Target, inside: bool) -> None:
    cat = Catalog(job_groups={"sales_job": {"sales"}, "shop_job": {"shop"}},
                  asset_groups={"sales/orders": {"sales"}, "shop/orders": {"shop"}},
                  sensor_jobs={"sales_sensor": {"sales_job"}, "sales": set()},
                  schedule_jobs={"shop_schedule": {"shop_job"}})
    runs = {"runs:r-sales": RunInfo("sales_job", (), (), False),
            "runs:r-shop-check": RunInfo("sales_job", (), ("shop/orders:c",), False),
            "backfills:b-sales": RunInfo("", ("sales/orders",), (), False),
            "backfills:b-mixed": RunInfo("", ("sales/orders", "shop/orders"), (), False)}
    assert (outside(cat, runs, [target], frozenset({"sales"})) == []) is inside


def test_long_target_lists_are_cut_in_the_audit() -> None:
    many = [Target(Kind.run, f"id-{i}", "t", "terminateRuns(runIds)") for i in range(1_500)]
    runs = audit_targets(many)["runs"]
    assert len(runs) == MAX_AUDIT_NAMES + 1 and runs[-1] == f"... and {1_500 - MAX_AUDIT_NAMES} more"


@pytest.mark.parametrize("runs, backfills", [(True, 0), (False, 2), (True, 3)])
def test_the_lookup_query_is_valid_against_dagsters_schema(inspector: GraphQLInspector, runs: bool,
                                                            backfills: int) -> None:
    inspector.inspect(lookup_query(runs, backfills))


def test_a_launch_selector_without_a_job_is_refused_whole(inspector: GraphQLInspector) -> None:
    """`jobName: ""` and no pipelineName: the selection alone is in scope, but there is no job to judge."""
    query = ('mutation { launchRun(executionParams: {selector: {repositoryName: "r", repositoryLocationName: "l", '
             'jobName: "", assetSelection: [{path: ["sales", "orders"]}]}}) { __typename } }')
    found = targets(inspector, query)
    cat = Catalog(job_groups={"sales_job": {"sales"}}, asset_groups={"sales/orders": {"sales"}})
    assert [t.name for t in outside(cat, {}, found, frozenset({"sales"}))] == ["sales/orders"]
