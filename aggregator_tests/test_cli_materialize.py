"""End to end through Dagster's own CLI, as a user would run it from the repository."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator_tests.process_env import platform_env

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _dagster(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = platform_env()
    env["AGGREGATOR_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_definitions_validate(tmp_path: Path) -> None:
    result = _dagster("definitions", "validate", "-w", "workspace.yaml", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asset_materialize_all_is_idempotent(tmp_path: Path) -> None:
    def snapshot() -> dict[str, list[tuple]]:
        with sqlite3.connect(tmp_path / "warehouse.db") as conn:
            return {
                t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
                for t in ("sales_orders", "sales_daily_sales", "sales_region_leaderboard")
            }

    first = _dagster("asset", "materialize", "-m", "aggregator.definitions", "--select", "*", home=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = snapshot()
    assert len(before["sales_orders"]) == 5000
    second = _dagster("asset", "materialize", "-m", "aggregator.definitions", "--select", "*", home=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert snapshot() == before


def test_a_run_started_by_dagster_asset_materialize_is_tagged_with_its_pipeline(tmp_path: Path) -> None:
    """Regression: runs from the UI's Materialize or `dagster asset materialize` use Dagster's implicit asset job,
    which has no tags, so `aggregator logs search --pipeline` and pipeline alerts missed them."""
    import dagster as dg

    from aggregator.alerts.sensors import pipeline_of
    from aggregator.logs.search import LogQuery, search_logs

    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(REPO / "aggregator" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = platform_env()
    env |= {"AGGREGATOR_HOME": str(tmp_path), "DAGSTER_HOME": str(dagster_home)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "aggregator.definitions", "--select",
         "sales/orders"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [run] = instance.get_runs()
        assert run.job_name == "__ASSET_JOB"
        assert run.tags["aggregator/pipeline"] == "sales"
        assert pipeline_of(run) == "sales"  # what alert rules match on
        found = search_logs(instance, LogQuery(pipeline="sales", limit=500))
        assert {line.run_id for line in found.lines} == {run.run_id}
        assert not search_logs(instance, LogQuery(pipeline="inventory", limit=10)).lines
