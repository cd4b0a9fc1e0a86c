"""GraphQL documents and helpers the proxy tests send through the proxy."""

from __future__ import annotations

import time
from typing import Any

import httpx

LOCATION = "aggregator.definitions"
REPO = "__repository__"
JOB_SELECTOR = {"jobName": "sales_job", "repositoryName": REPO, "repositoryLocationName": LOCATION}
SCHEDULE_SELECTOR = {"scheduleName": "sales_schedule", "repositoryName": REPO, "repositoryLocationName": LOCATION}

LAUNCH = """mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId tags { key value } } } ... on PythonError { message } } }"""
START_SCHEDULE = """mutation Start($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }"""
RESET_SCHEDULE = """mutation Reset($s: ScheduleSelector!) { resetSchedule(scheduleSelector: $s) { __typename
  ... on ScheduleStateResult { scheduleState { status } } } }"""
SCHEDULE_STATUS = """query Status($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) {
  ... on Schedule { scheduleState { id status } } } }"""
STOP_SCHEDULE = """mutation Stop($id: String!) { stopRunningSchedule(id: $id) { __typename
  ... on ScheduleStateResult { scheduleState { status } } } }"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status tags { key value } } } }"""
RUN_LOGS = """subscription Logs($runId: ID!) { pipelineRunLogs(runId: $runId) { __typename
  ... on PipelineRunLogsSubscriptionSuccess { messages { __typename } hasMorePastEvents } } }"""

# One representative per mutation class, each with variables that would succeed if allowed.
MUTATION_CLASSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "launch": ("launcher", LAUNCH, {"p": {"selector": JOB_SELECTOR}}),
    "terminate": ("launcher", ('mutation { terminateRun(runId: "00000000-0000-0000-0000-000000000000") '
                               "{ __typename } }"), {}),
    "backfill": ("launcher", ("mutation B($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) "
                              "{ __typename } }"), {"p": {"assetSelection": [{"path": ["sales", "orders"]}], "allPartitions": True}}),
    "schedule": ("editor", START_SCHEDULE, {"s": SCHEDULE_SELECTOR}),
    "wipe": ("editor", ("mutation W($k: [PartitionsByAssetSelector!]!) { wipeAssets(assetPartitionRanges: $k) "
                        "{ __typename } }"), {"k": [{"assetKey": {"path": ["sales", "orders"]}}]}),
    "reload_location": ("editor", (f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{LOCATION}") '
                                   "{ __typename } }"), {}),
    "report_event": ("editor", ("mutation R($e: ReportRunlessAssetEventsParams!) { reportRunlessAssetEvents("
                                "eventParams: $e) { __typename } }"),
                     {"e": {"eventType": "ASSET_MATERIALIZATION", "assetKey": {"path": ["sales", "orders"]}}}),
    "concurrency": ("admin", 'mutation { setConcurrencyLimit(concurrencyKey: "k", limit: 1) }', {}),
    "workspace": ("admin", "mutation { reloadWorkspace { __typename } }", {}),
}


def gql(client: httpx.Client, base: str, query: str, variables: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


def schedule_state(base: str, headers: dict[str, str]) -> dict[str, str]:
    with httpx.Client(timeout=30) as c:
        body = gql(c, base, SCHEDULE_STATUS, {"s": SCHEDULE_SELECTOR}, headers).json()
    return dict(body["data"]["scheduleOrError"]["scheduleState"])


def schedule_status(base: str, headers: dict[str, str]) -> str:
    return schedule_state(base, headers)["status"]


def ensure_schedule_stopped(base: str, editor: dict[str, str]) -> None:
    """The sample schedule may default to RUNNING; tests that watch for a start need it stopped first."""
    state = schedule_state(base, editor)
    if state["status"] == "RUNNING":
        with httpx.Client(timeout=30) as c:
            gql(c, base, STOP_SCHEDULE, {"id": state["id"]}, editor).raise_for_status()
    assert schedule_status(base, editor) == "STOPPED"


def wait_run(base: str, run_id: str, headers: dict[str, str], timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=30) as c:
        while True:
            run = gql(c, base, RUN, {"id": run_id}, headers).json()["data"]["runOrError"]
            if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED") or time.monotonic() > deadline:
                return dict(run)
            time.sleep(1)
