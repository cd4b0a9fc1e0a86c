"""End to end through Dagster's own CLI, as a user would run it from the repository."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _dagster(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
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
