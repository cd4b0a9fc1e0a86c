"""Missed schedule ticks after an outage, against a real `dagster-daemon` (docs/operations.md).

The outage is made by moving the schedules' stored start back three hours before the daemon first runs: to
the scheduler that is exactly a daemon that was down across the tick two hours ago. `catch_up: latest` (the
default) must run that tick once; `catch_up: skip` must record it as skipped, saying why, and run nothing."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData, TickStatus

from aggregator_tests.process_env import platform_env

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PROGRESS_S = 600

SPEC = """
connections:
  drop: {{type: files, config: {{base_dir: data}}}}
pipelines:
  - name: latest
    schedule: {{cron: "{cron}", enabled: false}}
    sources:
      - {{name: rows, connection: drop, stream: {{type: file, path: "*.csv"}}, write_mode: replace}}
  - name: skipper
    schedule: {{cron: "{cron}", enabled: false, catch_up: skip, late_after_s: 600}}
    sources:
      - {{name: rows, connection: drop, stream: {{type: file, path: "*.csv"}}, write_mode: replace}}
"""


def _dagster(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "dagster", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=PROGRESS_S, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.timeout(1800)  # three Dagster processes in a row; minutes each on a loaded machine
def test_missed_ticks_follow_each_schedules_catch_up_policy(tmp_path: Path) -> None:
    specs, home = tmp_path / "specs", tmp_path / "home"
    (specs / "data").mkdir(parents=True)
    (specs / "data" / "a.csv").write_text("id\n1\n")
    # A daily tick two hours ago: the newest missed tick of the outage, evaluated two hours late.
    missed = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    (specs / "ticks.yaml").write_text(SPEC.format(cron=f"{missed.minute} {missed.hour} * * *"))
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO / "aggregator" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), DAGSTER_HOME=str(dagster_home))
    _dagster(["schedule", "start", "--start-all", "-m", "aggregator.definitions"], env)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        states = {s.name: s for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)}
        assert set(states) == {"latest_schedule", "skipper_schedule"}, states
        outage_began = (missed - dt.timedelta(hours=1)).timestamp()
        for state in states.values():
            data = state.instigator_data
            assert isinstance(data, ScheduleInstigatorData)
            instance.update_instigator_state(state.with_data(ScheduleInstigatorData(
                data.cron_schedule, start_timestamp=outage_began)))

    daemon = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-m", "aggregator.definitions",
                               "--log-level", "warning"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            deadline = time.monotonic() + PROGRESS_S
            ticks: dict[str, list] = {}
            while time.monotonic() < deadline:
                assert daemon.poll() is None, f"the daemon exited with {daemon.returncode}"
                ticks = {s.name: list(instance.get_ticks(s.instigator_origin_id, s.selector_id))
                         for s in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)}
                if all(any(t.status != TickStatus.STARTED for t in ts) for ts in ticks.values()) and len(ticks) == 2:
                    break
                time.sleep(1)
            else:
                pytest.fail(f"the daemon evaluated no tick in {PROGRESS_S} s: {ticks}")
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "latest_schedule"}))
            skipped = instance.get_runs(dg.RunsFilter(tags={"dagster/schedule_name": "skipper_schedule"}))
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()

    # latest: the missed tick ran once, for its own time.
    [latest_tick] = [t for t in ticks["latest_schedule"] if t.status != TickStatus.STARTED]
    assert latest_tick.status == TickStatus.SUCCESS, latest_tick
    assert len(runs) == 1, runs
    assert latest_tick.timestamp == missed.timestamp() and latest_tick.run_ids == [runs[0].run_id], latest_tick
    # skip: nothing ran, and the tick says why.
    [skip_tick] = [t for t in ticks["skipper_schedule"] if t.status != TickStatus.STARTED]
    assert skip_tick.status == TickStatus.SKIPPED and skip_tick.timestamp == missed.timestamp(), skip_tick
    assert "missed tick" in (skip_tick.skip_reason or "") and "catch_up: skip" in (skip_tick.skip_reason or "")
    assert skipped == []
