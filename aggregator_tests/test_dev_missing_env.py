"""A connection's `{env: NAME}` unset in `aggregator dev`'s environment: runs the platform launches (the API's
trigger, as the UI's Materialize, through the code server; a schedule tick, through the daemon) fail with the
one line that names the pipeline, connection, field and variable (issue 20; `dagster asset materialize` is
covered in aggregator_tests/pipelines/test_missing_env.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.proxy.server import open_store
from aggregator_tests.dev_process import running_dev
from aggregator_tests.pipelines.test_missing_env import LINE, SET_VALUE, SPEC
from aggregator_tests.process_env import platform_env
from aggregator_tests.processes import free_port

pytestmark = pytest.mark.slow

# The same pipeline with a schedule every minute: the daemon's tick is the launch nobody clicks.
SCHEDULED = SPEC.replace("  - name: crm\n", "  - name: crm\n    schedule: {cron: \"* * * * *\"}\n")

RUNS = """query { runsOrError(filter: {tags: [{key: "aggregator/pipeline", value: "crm"}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""
# The UI's run log: each event's message, and an error with the causes it shows under it ("caused by").
ERROR = "error { message cause { message } causes { message } }"
LOGS = f"""query($id: ID!) {{ logsForRun(runId: $id) {{ ... on EventConnection {{ events {{
  ... on MessageEvent {{ message }}
  ... on EngineEvent {{ {ERROR} }}
  ... on ResourceInitFailureEvent {{ {ERROR} }}
  ... on ExecutionStepFailureEvent {{ {ERROR} }}
  ... on RunFailureEvent {{ {ERROR} }} }} }} }} }}"""


def _runs(client: httpx.Client) -> list[dict[str, Any]]:
    answer = client.post("/graphql", json={"query": RUNS})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"]["runsOrError"]["results"])


def _log(client: httpx.Client, run_id: str) -> str:
    answer = client.post("/graphql", json={"query": LOGS, "variables": {"id": run_id}})
    assert answer.status_code == 200, answer.text
    assert "errors" not in answer.json(), answer.text
    lines = []
    for event in answer.json()["data"]["logsForRun"]["events"]:
        lines.append(str(event.get("message") or ""))
        error = event.get("error") or {}
        for part in [error, error.get("cause") or {}, *(error.get("causes") or [])]:
            lines.append(str(part.get("message") or ""))
    return "\n".join(lines)


def test_runs_launched_by_the_api_and_a_schedule_fail_with_the_one_line(tmp_path: Path) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir()
    (specs / "crm.yaml").write_text(SCHEDULED)
    env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), AGG_TEST_CRM_USER=SET_VALUE,
                       AGGREGATOR_ADMIN_PASSWORD="dev-admin-password-1")
    env.pop("AGG_TEST_CRM_PASSWORD", None)
    with running_dev(env, free_port(), tmp_path) as dev:
        store, _audit = open_store(f"sqlite:///{home / 'proxy.db'}")
        token, _ = store.create_token("admin")  # the dev admin's token launches as the UI's Materialize
        store.engine.dispose()
        with httpx.Client(base_url=dev.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            launched = client.post("/api/pipelines/crm/trigger", json={})
            assert launched.status_code == 201, launched.text
            triggered = launched.json()["run_id"]
            # Progress, not a deadline: the suite's timeout bounds the wait for both runs to finish.
            while True:
                runs = {str(r["runId"]): r for r in _runs(client)}
                scheduled = [r for r in runs.values()
                             if any(t["key"] == "dagster/schedule_name" for t in r["tags"])]
                done = [r for r in [runs.get(triggered), *scheduled] if r and r["status"] in ("FAILURE", "SUCCESS")]
                if runs.get(triggered, {}).get("status") in ("FAILURE", "SUCCESS") and scheduled and len(done) >= 2:
                    break
                assert dev.proc.poll() is None, dev.output[-3000:]
                time.sleep(1)
            for run in done:
                assert run["status"] == "FAILURE", run
                log = _log(client, str(run["runId"]))
                assert LINE in log, log[-3000:]
                assert SET_VALUE not in log
    assert SET_VALUE not in dev.output
