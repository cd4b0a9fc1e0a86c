"""A run executes the spec store revision it was launched with, whichever process loads it (issue 19).

Real processes: a code server loads revision N, the store is moved to N+1 (as another replica's API write or
`aggregator specs apply` would), then a run is launched from the code server's definitions. The run worker
(started by the code server) reconstructs the location after the store moved: it must load N, verified by
digest, and write N's result to the warehouse.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from aggregator.settings import Settings
from aggregator.specstore.current import open_spec_db
from aggregator.specstore.pinning import PinnedSpecsError, load_revision
from aggregator_tests.deploy.test_run_pod_executes import wait_for_grpc
from aggregator_tests.process_env import platform_env
from aggregator_tests.processes import free_port

REPO = Path(__file__).resolve().parents[2]
SPEC = """\
pipelines:
  - name: pinned
    transforms:
      - name: marker
        sql: "SELECT '{marker}' AS marker"
"""



def test_a_run_loads_the_revision_it_was_launched_with_not_the_newest(tmp_path: Path) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir()
    (specs / "pinned.yaml").write_text(SPEC.format(marker="launched"))
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    # Launched at once by the code server (no daemon here to dequeue a queued run).
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nrun_coordinator:\n  module: "
                                               "dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    warehouse = home / "warehouse.db"
    env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), DAGSTER_HOME=str(dagster_home),
                       AGGREGATOR_WAREHOUSE_URL=f"sqlite:///{warehouse}")
    port = free_port()
    log = tmp_path / "code-server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "dagster", "code-server", "start", "-m",
                                   "aggregator.definitions", "--location-name", "aggregator", "--host", "127.0.0.1",
                                   "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_for_grpc(port, server, log)
        settings = Settings(home=home, pipelines_dir=specs, warehouse_url=f"sqlite:///{warehouse}")
        db = open_spec_db(settings)
        launched = db.snapshot()
        assert launched.files["pinned.yaml"] == SPEC.format(marker="launched")
        # The store moves on before any run worker exists (the directory keeps the old text: not the source).
        moved = db.commit({"pinned.yaml": SPEC.format(marker="newer")}, launched.revision, "other-replica", "api:update")
        assert moved == launched.revision + 1

        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
            "host": "127.0.0.1", "port": port, "location_name": "aggregator"}}]}))
        launch = subprocess.run([sys.executable, "-m", "dagster", "job", "launch", "-w", str(workspace),
                                 "-j", "pinned_job"], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=600, check=False)
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            deadline = time.monotonic() + 600
            while True:
                (run,) = instance.get_runs()
                if run.is_finished or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert run.status == dg.DagsterRunStatus.SUCCESS, (run.status, log.read_text()[-4000:])
            assert run.has_repository_load_data  # the pin travelled with the run, as Dagster's own metadata
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT marker FROM pinned_marker").fetchall() == [("launched",)]
    assert db.head() == moved


def test_a_revision_whose_files_differ_from_the_recorded_digest_is_refused(tmp_path: Path) -> None:
    """A run reading a different store than its code server (wrong AGGREGATOR_SPECS_DB_URL) fails loudly
    instead of running other specs under the same revision number."""
    settings = Settings(home=tmp_path, pipelines_dir=tmp_path / "specs", warehouse_url="sqlite://")
    db = open_spec_db(settings)
    number = db.commit({"a.yaml": "pipelines: []\n"}, 0, "test", "apply")
    assert load_revision(settings, number, db.snapshot(number).digest).files == {"a.yaml": "pipelines: []\n"}
    with pytest.raises(PinnedSpecsError, match="not the one this run was launched with"):
        load_revision(settings, number, "0" * 64)
    with pytest.raises(PinnedSpecsError, match="does not have"):
        load_revision(settings, number + 5, "0" * 64)
