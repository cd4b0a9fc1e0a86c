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
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.process_env import platform_env
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


class Meeting:
    """Two routes that answer only once both were called: two steps that reach it must be running at once."""

    def __init__(self) -> None:
        self.arrived: set[str] = set()
        self.both = threading.Event()

    def app(self) -> Starlette:
        async def meet(request: Request) -> Response:
            self.arrived.add(request.path_params["name"])
            if len(self.arrived) == 2:
                self.both.set()
            # Only breaks a deadlock (steps run one after the other) so the run fails instead of hanging.
            for _ in range(6000):
                if self.both.is_set():
                    return JSONResponse({"data": [{"id": 1, "amount": len(self.arrived)}]})
                await asyncio.sleep(0.05)
            return JSONResponse({"error": "the other step never came"}, status_code=400)

        return Starlette(routes=[Route("/meet/{name}", meet)])


PARALLEL = """
connections:
  meet_api:
    type: rest
    config: {{base_url: "{url}"}}
pipelines:
  - name: pair
    executor: multiprocess
    sources:
      - {{name: left, connection: meet_api, stream: {{type: rest, path: meet/left, records_path: data}}}}
      - {{name: right, connection: meet_api, stream: {{type: rest, path: meet/right, records_path: data}}}}
"""


def _dagster_job(job: str, specs: Path, home: Path, warehouse_url: str | None = None) -> subprocess.Popen[str]:
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = platform_env()
    env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), DAGSTER_HOME=str(home / "dagster"))
    env["AGGREGATOR_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the test API on loopback (connectors/egress.py)
    if warehouse_url:
        env["AGGREGATOR_WAREHOUSE_URL"] = warehouse_url
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "aggregator.definitions", "-j", job],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    """The run's output; the whole process group is killed if it is still there."""
    try:
        out, _ = proc.communicate(timeout=600)
        return out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_multiprocess_executor_runs_independent_steps_in_parallel(tmp_path: Path, pg_db: PgDatabase) -> None:
    """A pipeline that opts into `executor: multiprocess` keeps what that is for: each step in its own process,
    independent steps at the same time (both sources must be inside their request together). PostgreSQL: a
    SQLite warehouse holds its write lock for a whole load, so loads into it queue by design."""
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir()
    meeting = Meeting()
    with serve(meeting.app()) as url:
        (specs / "pair.yaml").write_text(PARALLEL.format(url=url))
        proc = _dagster_job("pair_job", specs, home, pg_db.sqlalchemy_url)
        out = _finish(proc)
    assert proc.returncode == 0, out[-4000:]
    assert meeting.arrived == {"left", "right"}
    # "<time> - dagster - DEBUG - <job> - <run id> - <pid> - <step> - STEP_WORKER_STARTED - …"
    pids = {line.split(" - ")[5] for line in out.splitlines() if " - STEP_WORKER_STARTED - " in line}
    assert len(pids) == 2, out[-4000:]  # two step processes
    assert query(pg_db.sqlalchemy_url, "SELECT amount FROM pair_left") == [(2,)]


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
    gate = Gate()
    with serve(gate.app()) as url:
        (specs / "gated.yaml").write_text(GATED.format(url=url))
        (specs / "inventory.yaml").write_text(UNRELATED)
        proc = _dagster_job("gated_job", specs, home)
        try:
            _wait_for(gate.reached, proc, "its first step read the API")
            (specs / "inventory.yaml").write_text(UNRELATED_BROKEN)
            (specs / "gated.yaml").write_text(GATED.format(url=url).replace("SUM(amount)", "SUM(no_such_column)"))
        finally:
            gate.release.set()
            out = _finish(proc)
    assert proc.returncode == 0, out[-4000:]
    assert "Executing steps using multiprocess executor" in out  # the steps really ran in their own processes
    assert query(f"sqlite:///{home / 'warehouse.db'}", "SELECT amount FROM gated_total") == [(42,)]
