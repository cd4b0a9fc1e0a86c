"""Exactly-once: a load SIGKILLed mid-way, then re-run, leaves exactly the source rows (no gaps, no duplicates)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator_tests.destinations.kill_load import main as load_files
from connectors.batches import Batch
from connectors.batches import ColumnType as T

SCRIPT = Path(__file__).with_name("kill_load.py")
ROOT = Path(__file__).resolve().parents[2]


def write_files(directory: Path, first: int, count: int, rows_per_file: int = 250) -> set[int]:
    ids: set[int] = set()
    for f in range(first, first + count):
        lines = ["id,file,value"]
        for r in range(rows_per_file):
            ident = f * 10_000 + r
            ids.add(ident)
            lines.append(f"{ident},{f},{r * 0.5}")
        (directory / f"part_{f:03d}.csv").write_text("\n".join(lines) + "\n")
    return ids


def run(url: str, data: Path, *mode: str) -> subprocess.Popen[str]:
    """The load in its own process, moving on one batch per line the test writes to its stdin."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(SCRIPT), url, str(data), "step", *mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True)


def loaded_ids(dest: SqlDestination) -> list[int]:
    with dest.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT id FROM events ORDER BY id"))]


@pytest.mark.slow
def test_killed_load_then_rerun_has_exactly_the_source_rows(dest: SqlDestination, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    expected = write_files(data, 0, 2)
    load_files(dest.url, str(data))  # a clean first load, in this process: 2 files and their state
    assert sorted(loaded_ids(dest)) == sorted(expected)

    expected |= write_files(data, 2, 6)
    victim = run(dest.url, data)
    assert victim.stdin is not None and victim.stdout is not None
    try:
        for count in range(1, 8):  # several batches (part of file 2, 3, 4 …) written inside its transaction
            line = victim.stdout.readline()
            assert line == f"written {count}\n", f"the load stopped early: {line!r}"
            if count < 7:
                victim.stdin.write("next\n")
                victim.stdin.flush()
        # The load is now waiting inside its transaction, after batch 7.
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        victim.stdin.close()
        victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL

    # Nothing of the killed load is visible: neither its rows nor its state.
    assert len(loaded_ids(dest)) == 500
    state = dest.read_state("events")
    assert state is not None and set(state["files"]) == {"part_000.csv", "part_001.csv"}

    assert load_files(dest.url, str(data)) == 1500  # the re-run loads exactly what the killed run did not
    ids = loaded_ids(dest)
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected

    assert load_files(dest.url, str(data)) == 0  # and a further run finds nothing new
    assert len(loaded_ids(dest)) == len(expected)


def scratch_tables(dest: SqlDestination) -> list[str]:
    return [t for t in sa.inspect(dest.engine).get_table_names() if t.startswith(("_stage_", "_old_"))]


@pytest.mark.slow
def test_a_replace_killed_while_staging_leaves_a_stage_the_next_load_of_its_table_drops(
    dest: SqlDestination, tmp_path: Path,
) -> None:
    """MySQL/MariaDB stages a replace in a permanent table (its DDL commits by itself, so no rollback removes
    it): a SIGKILL there left `_stage_…` behind for good. The next load of the table, under the table's lock,
    drops it; a load of another table meanwhile must leave a live load's stage alone."""
    data = tmp_path / "data"
    data.mkdir()
    expected = write_files(data, 0, 3)
    victim = run(dest.url, data, "replace")
    assert victim.stdin is not None and victim.stdout is not None
    try:
        for count in (1, 2):
            assert victim.stdout.readline() == f"written {count}\n"
            if count < 2:
                victim.stdin.write("next\n")
                victim.stdin.flush()
        # Two batches staged, the load paused inside them: its stage is live. (SQLite has one writer at a time,
        # whose transaction holds the stage: nothing to look at or load meanwhile.)
        live: list[str] = []
        if dest.dialect != "sqlite":
            live = scratch_tables(dest)
            assert len(live) == (1 if dest.dialect == "mysql" else 0), live  # PostgreSQL: in the transaction
            other = dest.load("other", [Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(1,)])], "replace")
            assert other.rows_written == 1 and scratch_tables(dest) == live  # another table's load touched nothing
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        victim.stdin.close()
        victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL
    assert scratch_tables(dest) == live  # what the kill left (MySQL: the stage)
    assert "events" not in sa.inspect(dest.engine).get_table_names() and dest.read_state("events") is None

    assert load_files(dest.url, str(data), mode="replace") == len(expected)
    assert scratch_tables(dest) == []
    assert sorted(loaded_ids(dest)) == sorted(expected)
