"""Issue 11.1: a run executes the pipeline definition it was launched with. Saving a broken spec file (an
unrelated one, and even the run's own) between two steps of a running multiprocess run must not fail it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aggregator_tests.pipelines.conftest import query
from aggregator_tests.testapi import serve

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

GATED = """
connections:
  gate_api:
    type: rest
    config: {{base_url: "{url}"}}
pipelines:
  - name: gated
    executor: multiprocess
    sources:
      - {{name: items, connection: gate_api, stream: {{type: rest, path: gated, records_path: data}}}}
    transforms:
      - name: total
        sql: "SELECT SUM(amount) AS amount FROM {{{{ ref('items') }}}}"
"""
UNRELATED = """
pipelines:
  - name: inventory
    transforms:
      - name: stock
        sql: "SELECT 1 AS n"
"""
# The reported case: an unknown step saved into an unrelated file mid-run.
UNRELATED_BROKEN = UNRELATED.replace('sql: "SELECT 1 AS n"', "from: stock\n        steps:\n          - explode: {column: n}")


class Gate:
    """An API route that answers only when the test releases it: the run is held inside its first step."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def app(self) -> Starlette:
        async def gated(_: Request) -> Response:
            self.reached.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return JSONResponse({"data": [{"id": 1, "amount": 10}, {"id": 2, "amount": 32}]})

        return Starlette(routes=[Route("/gated", gated)])


def _wait_for(event: threading.Event, proc: subprocess.Popen[str], what: str) -> None:
    """Wait as long as the run is alive and working: the machine may be slow, a dead run is a failure."""
    while not event.wait(0.2):
        if proc.poll() is not None:
            out, _ = proc.communicate()
            pytest.fail(f"the run ended before {what}:\n{out[-4000:]}")


def test_saving_broken_specs_mid_run_does_not_change_or_fail_the_run(tmp_path: Path) -> None:
    """Between the run's two steps, an unrelated spec gets an unknown step and the run's own transform gets a
    column that does not exist. The transform step (a fresh process under the multiprocess executor) must
    still run the SQL the run was launched with."""
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir()
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    gate = Gate()
    with serve(gate.app()) as url:
        (specs / "gated.yaml").write_text(GATED.format(url=url))
        (specs / "inventory.yaml").write_text(UNRELATED)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
        env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), DAGSTER_HOME=str(home / "dagster"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", "aggregator.definitions", "-j", "gated_job"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            _wait_for(gate.reached, proc, "its first step read the API")
            (specs / "inventory.yaml").write_text(UNRELATED_BROKEN)
            (specs / "gated.yaml").write_text(GATED.format(url=url).replace("SUM(amount)", "SUM(no_such_column)"))
            gate.release.set()
            out, _ = proc.communicate(timeout=600)
        finally:
            gate.release.set()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, out[-4000:]
    assert "Executing steps using multiprocess executor" in out  # the steps really ran in their own processes
    assert query(f"sqlite:///{home / 'warehouse.db'}", "SELECT amount FROM gated_total") == [(42,)]
