"""Partitioned pipelines: a backfill of three days loads exactly those three windows."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from aggregator_tests.helpers import key_of
from aggregator_tests.pipelines.conftest import query

SPEC = """
connections:
  events_db:
    type: sql
    config: {url: "sqlite:///events.db"}
pipelines:
  - name: clicks
    partitions: {grain: daily, start: 2026-09-01}
    schedule: {cron: "30 0 * * *"}
    sources:
      - name: events
        connection: events_db
        stream: {type: sql, table: events, window_column: ts}
        write_mode: merge
        primary_key: [id]
    transforms:
      - name: per_day
        from: events
        steps:
          - time_bucket: {column: ts, grain: day, as: day}
          - aggregate: {group_by: [day], metrics: {n: COUNT(*)}}
"""


def make_events(path: Path) -> dict[str, int]:
    """Ten days of events, a different count each day; returns rows per day."""
    per_day: dict[str, int] = {}
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, v REAL)")
        next_id = 1
        for offset in range(10):
            day = dt.datetime(2026, 9, 1) + dt.timedelta(days=offset)
            per_day[day.date().isoformat()] = offset + 2
            for i in range(offset + 2):
                conn.execute("INSERT INTO events VALUES (?, ?, ?)", (next_id, (day + dt.timedelta(hours=2 * i)).isoformat(sep=" "), i))
                next_id += 1
    return per_day


def test_backfill_of_three_days_loads_exactly_three_windows(instance: dg.DagsterInstance, 
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    per_day = make_events(spec_dir / "events.db")
    (spec_dir / "clicks.yaml").write_text(SPEC)
    defs = compile_specs(warehouse_url)
    job = defs.resolve_job_def("clicks_job")
    assert isinstance(job.partitions_def, dg.DailyPartitionsDefinition)
    chosen = ["2026-09-03", "2026-09-04", "2026-09-06"]
    for key in chosen:
        result = job.execute_in_process(instance=instance, partition_key=key)
        source = next(e for e in result.get_asset_materialization_events() if key_of(e).endswith("/events"))
        assert source.materialization.metadata["rows_read"].value == per_day[key]
        assert source.partition == key
    loaded = query(warehouse_url, "SELECT COUNT(*) FROM clicks_events")[0][0]
    assert loaded == sum(per_day[k] for k in chosen)
    days = {str(d)[:10]: n for d, n in query(warehouse_url, "SELECT day, n FROM clicks_per_day")}
    assert days == {k: per_day[k] for k in chosen}
    # Re-running a window is idempotent (merge on id).
    job.execute_in_process(instance=instance, partition_key="2026-09-04")
    assert query(warehouse_url, "SELECT COUNT(*) FROM clicks_events")[0][0] == loaded


def test_partitioned_schedule_requests_the_last_complete_day(spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> None:
    make_events(spec_dir / "events.db")
    (spec_dir / "clicks.yaml").write_text(SPEC)
    defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
    schedule = defs.resolve_schedule_def("clicks_schedule")
    # Both as context managers: an unclosed schedule context leaves Dagster's current defs-state storage
    # pointing at this instance after it is gone, and later tests in the process fail to load definitions.
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime(2026, 9, 5, 0, 30, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests or []
    assert [r.partition_key for r in requests] == ["2026-09-04"]
