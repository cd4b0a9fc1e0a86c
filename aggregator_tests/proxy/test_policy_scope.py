"""Regression tests for the scope holes of issue 9, against a real webserver behind the real proxy.

Each test is named after its finding and fails on fb0fb08. What happened is read back from Dagster directly
(bypassing the proxy), so a refusal is also checked to have launched nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, Self

import httpx
import pytest

from aggregator.proxy.policy.catalog import MAX_SCOPED_RUN_IDS
from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy.policy_stack import PolicyStack, policy_stack, selector

pytestmark = pytest.mark.slow

RESULT = "__typename ... on LaunchRunSuccess { run { runId jobName } } ... on PythonError { message }"
LAUNCH_RUN = f"mutation L($p: ExecutionParams!) {{ launchRun(executionParams: $p) {{ {RESULT} }} }}"
LAUNCH_PIPELINE = (f"mutation L($p: ExecutionParams!) {{ launchPipelineExecution(executionParams: $p) "
                   f"{{ {RESULT} }} }}")
LAUNCH_MULTIPLE = ("mutation L($l: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $l) { __typename "
                   f"... on LaunchMultipleRunsResult {{ launchMultipleRunsResult {{ {RESULT} }} }} }} }}")
REEXECUTE_RUN = f"mutation R($p: ExecutionParams) {{ launchRunReexecution(executionParams: $p) {{ {RESULT} }} }}"
REEXECUTE_PIPELINE = (f"mutation R($p: ExecutionParams) {{ launchPipelineReexecution(executionParams: $p) "
                      f"{{ {RESULT} }} }}")
TERMINATE_RUNS = ("mutation T($ids: [String!]!) { terminateRuns(runIds: $ids) { __typename "
                  "... on TerminateRunsResult { terminateRunResults { __typename } } } }")
WIPE = ("mutation W($k: [PartitionsByAssetSelector!]!) { wipeAssets(assetPartitionRanges: $k) { __typename } }")
START_SENSOR = "mutation S($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }"
START_SCHEDULE = "mutation S($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }"

SALES_ORDERS = {"path": ["sales", "orders"]}
SHOP_ORDERS = {"path": ["shop", "orders"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyStack]:
    yield from policy_stack(tmp_path_factory.mktemp("policy-scope"))


@pytest.fixture(scope="module")
def sales_run(stack: PolicyStack) -> str:
    """A run of sales_job launched by the scoped launcher itself (in scope: it is the parent of re-executions)."""
    body = stack.post("sales-launcher", LAUNCH_RUN, {"p": {"selector": selector("sales_job")}}).json()
    assert body["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", body
    return str(body["data"]["launchRun"]["run"]["runId"])


def _two_jobs(sales_run: str) -> dict[str, dict[str, Any]]:
    """Each launch mutation, with a selector naming `sales_job` as jobName and `shop_job` as pipelineName."""
    params = {"selector": selector("sales_job", "shop_job")}
    reexec = {**params, "executionMetadata": {"rootRunId": sales_run, "parentRunId": sales_run}}
    return {
        "launchRun": {"query": LAUNCH_RUN, "variables": {"p": params}},
        "launchPipelineExecution": {"query": LAUNCH_PIPELINE, "variables": {"p": params}},
        "launchMultipleRuns": {"query": LAUNCH_MULTIPLE, "variables": {"l": [params]}},
        "launchRunReexecution": {"query": REEXECUTE_RUN, "variables": {"p": reexec}},
        "launchPipelineReexecution": {"query": REEXECUTE_PIPELINE, "variables": {"p": reexec}},
    }


@pytest.mark.parametrize("mutation", ["launchRun", "launchPipelineExecution", "launchMultipleRuns",
                                      "launchRunReexecution", "launchPipelineReexecution"])
def test_hole1_scoped_launcher_cannot_launch_other_job_via_pipelineName(
        stack: PolicyStack, sales_run: str, mutation: str) -> None:
    """Hole 1: the proxy authorized `jobName or pipelineName`, Dagster executes `pipelineName or jobName`, so a
    launcher scoped to `sales` launched `shop_job` by naming both. Both names are targets now."""
    request = _two_jobs(sales_run)[mutation]
    before = stack.run_ids()
    resp = stack.post("sales-launcher", request["query"], request["variables"])
    assert resp.status_code == 403, resp.text
    assert "jobs:shop_job" in resp.json()["missing_permission"]
    assert stack.run_ids() == before, "a refused launch must not create a run"


def test_hole1_audit_records_the_job_dagster_executes(stack: PolicyStack) -> None:
    """Hole 1, audit half: with jobName `sales_job` and pipelineName `shop_job` Dagster runs `shop_job`; the
    audit record named `sales_job`."""
    resp = stack.post("launcher", LAUNCH_RUN, {"p": {"selector": selector("sales_job", "shop_job")}})
    run = resp.json()["data"]["launchRun"]["run"]
    assert stack.runs({run["runId"]})[0]["jobName"] == "shop_job"
    record = next(r for r in stack.proxy.audit.query(AuditQuery(username="launcher", decision="allow", limit=20))
                  if r.run_id == run["runId"])
    assert record.targets["jobs"] == ["shop_job"]


def test_hole3_scoped_launcher_cannot_run_checks_of_other_pipelines(stack: PolicyStack) -> None:
    """Hole 3: `assetCheckSelection` was not a target, so a launcher scoped to `sales` ran a check of
    `shop/orders` inside a `sales_job` run (Dagster builds the subset from the whole asset graph)."""
    check = stack.checks_of(SHOP_ORDERS["path"])[0]
    before = stack.run_ids()
    for extra in ({"assetCheckSelection": [{"assetKey": SHOP_ORDERS, "name": check}]},
                  {"assetSelection": [SALES_ORDERS], "assetCheckSelection": [{"assetKey": SHOP_ORDERS, "name": check}]}):
        resp = stack.post("sales-launcher", LAUNCH_RUN, {"p": {"selector": selector("sales_job", **extra)}})
        assert resp.status_code == 403, resp.text
        assert f"asset_checks:shop/orders:{check}" in resp.json()["missing_permission"]
    assert stack.run_ids() == before


def test_asset_selection_of_other_pipeline_inside_own_job_is_refused(stack: PolicyStack) -> None:
    """Same class as hole 3: an asset selection is built from the whole repository, not from the named job."""
    resp = stack.post("sales-launcher", LAUNCH_RUN,
                      {"p": {"selector": selector("sales_job", assetSelection=[SHOP_ORDERS])}})
    assert resp.status_code == 403 and "assets:shop/orders" in resp.json()["missing_permission"]


def test_scope_name_is_not_matched_across_kinds(stack: PolicyStack) -> None:
    """A scope names pipelines. Scope `sales` allowed wiping an asset *named* `sales` and starting a sensor
    *named* `sales` because names were compared with the scope whatever their kind."""
    wipe = stack.post("sales-editor", WIPE, {"k": [{"assetKey": {"path": ["sales"]}}]})
    assert wipe.status_code == 403 and wipe.json()["missing_permission"] == "editor:wipeAssets on assets:sales"
    sensor = stack.post("sales-editor", START_SENSOR, {"s": {"sensorName": "sales", "repositoryName": "__repository__",
                                                              "repositoryLocationName": "aggregator.definitions"}})
    assert sensor.status_code == 403 and "sensors:sales" in sensor.json()["missing_permission"]
    shop = stack.post("sales-editor", START_SCHEDULE, {"s": {"scheduleName": "shop_schedule",
                                                             "repositoryName": "__repository__",
                                                             "repositoryLocationName": "aggregator.definitions"}})
    assert shop.status_code == 403
    own = stack.post("sales-editor", START_SCHEDULE, {"s": {"scheduleName": "sales_schedule",
                                                            "repositoryName": "__repository__",
                                                            "repositoryLocationName": "aggregator.definitions"}})
    assert own.status_code == 200, own.text
    # The report route goes through the same membership rules.
    auth = {"Authorization": f"Bearer {stack.tokens['sales-editor']}"}
    named_like_scope = httpx.post(f"{stack.proxy.url}/report_asset_materialization/sales", headers=auth, timeout=60)
    assert named_like_scope.status_code == 403, named_like_scope.text
    inside = httpx.post(f"{stack.proxy.url}/report_asset_materialization/sales/orders", headers=auth, timeout=60)
    assert inside.status_code == 200, inside.text


def test_scoped_launcher_can_materialize_in_scope_assets_via_asset_job(stack: PolicyStack) -> None:
    """The UI's Materialize button launches `__ASSET_JOB` with an asset selection; it was always refused for a
    scoped launcher. It is allowed when every selected asset (and check) is in scope, and only then."""
    sales = [SALES_ORDERS, {"path": ["sales", "daily_sales"]}]
    resp = stack.post("sales-launcher", LAUNCH_RUN, {"p": {"selector": selector("__ASSET_JOB", assetSelection=sales)}})
    assert resp.status_code == 200 and resp.json()["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", resp.text
    run = stack.runs({resp.json()["data"]["launchRun"]["run"]["runId"]})[0]
    assert run["jobName"] == "__ASSET_JOB"
    assert sorted("/".join(a["path"]) for a in run["assetSelection"]) == ["sales/daily_sales", "sales/orders"]
    before = stack.run_ids()
    for extra in ({"assetSelection": [SALES_ORDERS, SHOP_ORDERS]}, {},
                  {"assetSelection": [SALES_ORDERS], "solidSelection": ["shop__orders"]}):
        refused = stack.post("sales-launcher", LAUNCH_RUN, {"p": {"selector": selector("__ASSET_JOB", **extra)}})
        assert refused.status_code == 403, (extra, refused.text)
    assert stack.run_ids() == before


class _CountRunLookups:
    """Counts the proxy's own upstream run look-ups through an httpx event hook on its client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client, self.count = client, 0

    async def __call__(self, request: httpx.Request) -> None:
        if b"AggregatorProxyRun" in request.content:
            self.count += 1

    def __enter__(self) -> Self:
        self.client.event_hooks["request"].append(self)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.event_hooks["request"].remove(self)


def test_terminate_runs_with_many_ids_is_one_lookup_and_a_short_refusal(stack: PolicyStack, sales_run: str) -> None:
    """`terminateRuns` with 1,500 ids for a scoped user made 1,500 sequential upstream look-ups and wrote every
    id into the 403 body and the audit. Now: one look-up per request, a bound, short bodies and records."""
    ids = [str(uuid.uuid4()) for _ in range(MAX_SCOPED_RUN_IDS - 1)] + [sales_run]
    with _CountRunLookups(stack.proxy.app.client) as lookups:
        resp = stack.post("sales-launcher", TERMINATE_RUNS, {"ids": ids})
    assert resp.status_code == 403
    assert lookups.count == 1
    assert len(resp.content) < 2_000 and f"and {MAX_SCOPED_RUN_IDS - 1 - 5} more" in resp.text
    too_many = stack.post("sales-launcher", TERMINATE_RUNS, {"ids": [str(uuid.uuid4()) for _ in range(1_500)]})
    assert too_many.status_code == 403 and len(too_many.content) < 2_000
    assert f"at most {MAX_SCOPED_RUN_IDS}" in too_many.text
    record = stack.proxy.audit.query(AuditQuery(username="sales-launcher", decision="deny", limit=1))[0]
    assert record.operation == "mutation:terminateRuns" and len(record.targets["runs"]) <= 21


def test_scoped_launcher_terminates_runs_inside_its_scope_only(stack: PolicyStack, sales_run: str) -> None:
    shop = stack.post("launcher", LAUNCH_RUN, {"p": {"selector": selector("shop_job")}}).json()
    shop_run = shop["data"]["launchRun"]["run"]["runId"]
    denied = stack.post("sales-launcher", TERMINATE_RUNS, {"ids": [sales_run, shop_run]})
    assert denied.status_code == 403 and denied.json()["missing_permission"] == \
        f"launcher:terminateRuns on runs:{shop_run}"
    allowed = stack.post("sales-launcher", TERMINATE_RUNS, {"ids": [sales_run]})
    assert allowed.status_code == 200, allowed.text


BACKFILL = ("mutation B($b: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $b) { __typename "
            "... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }")
CANCEL_BACKFILL = ("mutation C($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename "
                   "... on PythonError { message } } }")


def test_scoped_launcher_manages_backfills_inside_its_scope_only(stack: PolicyStack) -> None:
    """Backfill ids were never resolved, so a scoped launcher could not cancel even its own backfills; now a
    backfill is inside a scope when what it runs is (one look-up per request, like runs)."""
    ids = {}
    for name, assets in {"sales": [SALES_ORDERS], "shop": [SHOP_ORDERS], "mixed": [SALES_ORDERS, SHOP_ORDERS]}.items():
        body = stack.post("admin", BACKFILL, {"b": {"assetSelection": assets, "allPartitions": True}}).json()
        assert body["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", body
        ids[name] = body["data"]["launchPartitionBackfill"]["backfillId"]
    for name in ("shop", "mixed"):
        denied = stack.post("sales-launcher", CANCEL_BACKFILL, {"id": ids[name]})
        assert denied.status_code == 403 and f"backfills:{ids[name]}" in denied.json()["missing_permission"]
    allowed = stack.post("sales-launcher", CANCEL_BACKFILL, {"id": ids["sales"]})
    assert allowed.status_code == 200, allowed.text
    own = stack.post("sales-launcher", BACKFILL, {"b": {"assetSelection": [SALES_ORDERS], "allPartitions": True}})
    assert own.json()["data"]["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", own.text
