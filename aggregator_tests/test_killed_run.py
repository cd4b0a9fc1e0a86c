"""A killed run leaves no zombie (issue 10, item 5).

SIGKILL of `dagster asset materialize` during a multiprocess load used to leave the step worker running: it
committed all its rows 41 s later while the run stayed STARTED, so an append re-run duplicated them. Now the
step notices its run worker is gone, stops and rolls back."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aggregator_tests.process_env import platform_env
from aggregator_tests.testapi import running_api

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

SPEC = """
connections:
  slow_api:
    type: rest
    config: {{base_url: "{url}"}}
pipelines:
  - name: feed
    sources:
      - name: events
        connection: slow_api
        stream:
          type: rest
          path: slow_pages
          records_path: data
          batch_size: 10
          pagination: {{type: page_number, page_size_param: null}}
        write_mode: append
"""


def _wait_for(condition, what: str, limit: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    # A safety net against hanging forever, not a timing assertion: each condition is progress we follow.
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigkilled_materialize_leaves_no_step_running_and_commits_nothing(tmp_path: Path) -> None:
    """The reported case, through Dagster's own CLI with the multiprocess executor."""
    home, specs = tmp_path / "home", tmp_path / "specs"
    dagster_home = home / "dagster"
    specs.mkdir()
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "aggregator" / "dagster.yaml", dagster_home / "dagster.yaml")
    with running_api() as api:
        (specs / "feed.yaml").write_text(SPEC.format(url=api.url))
        env = platform_env()
        env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), DAGSTER_HOME=str(dagster_home))
        env["AGGREGATOR_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the test API on loopback (connectors/egress.py)
        cli = subprocess.Popen(
            [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "aggregator.definitions",
             "--select", "*"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        step_pids: list[int] = []
        try:
            # Follow progress: the step process has fetched (and handed the destination) a few pages.
            _wait_for(lambda: api.state.hits["/slow_pages"] >= 4, "the load to start")
            step_pids = [p.pid for p in psutil.Process(cli.pid).children(recursive=True)]
            assert step_pids, "expected the multiprocess executor to run the step in a child process"
            cli.send_signal(signal.SIGKILL)  # only the run worker, as `kill -9` of the CLI would
            cli.wait(timeout=60)
            _wait_for(lambda: not any(_alive(pid) for pid in step_pids), "the orphaned step to stop")
            served = api.state.hits["/slow_pages"]
            assert served < 50, "the orphaned step read the whole source"
        finally:
            for pid in step_pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.killpg(cli.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            cli.wait(timeout=60)
    warehouse = home / "warehouse.db"
    if warehouse.exists():
        with sqlite3.connect(warehouse) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert "feed_events" not in tables, "rows were committed after the run was killed"


@pytest.mark.parametrize("config", ["dagster.yaml", "aggregator/dagster.yaml"])
def test_local_instances_enable_run_monitoring(config: str, tmp_path: Path) -> None:
    """The instance `aggregator dev` makes (a copy of aggregator/dagster.yaml) and the repository's own detect
    a dead run worker and mark its run failed."""
    import dagster as dg

    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO / config, home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.run_monitoring_enabled
    finally:
        instance.dispose()


def test_a_run_marked_failed_stops_its_load_without_committing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run monitoring (or a user) marks a run failed while its step still loads: the step stops at its next
    batch and rolls back, instead of committing rows for a run that is recorded as failed."""
    import threading

    import dagster as dg

    from aggregator.pipelines import liveness
    from aggregator.pipelines.compile import build_definitions
    from aggregator.pipelines.load import load_specs
    from aggregator.settings import load_settings

    monkeypatch.setattr(liveness, "STATUS_EVERY_SECONDS", 0.0)  # look at the run's status every batch
    specs = tmp_path / "specs"
    specs.mkdir()
    warehouse = tmp_path / "warehouse.db"
    with running_api() as api:
        (specs / "feed.yaml").write_text(SPEC.format(url=api.url))
        settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"),
                                  "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{warehouse}"})
        defs = build_definitions(load_specs(specs), settings)
        instance = dg.DagsterInstance.ephemeral()

        def fail_the_run() -> None:
            _wait_for(lambda: api.state.hits["/slow_pages"] >= 3, "the load to start")
            (run,) = instance.get_runs()
            instance.report_run_failed(run)

        marker = threading.Thread(target=fail_the_run)
        marker.start()
        try:
            job = defs.resolve_implicit_global_asset_job_def()
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        finally:
            marker.join()
        assert not result.success
        assert api.state.hits["/slow_pages"] < 50
    (failure,) = result.get_step_failure_events()
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure is not None and "is marked FAILURE; stopping the load without committing" in str(user_failure.description)
    with sqlite3.connect(warehouse) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "feed_events" not in tables
