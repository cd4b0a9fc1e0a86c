"""Issue 11.8: a long load logs its progress at a steady pace (rows so far, rows/s, batches), live in the
run's event log, not one line after the load finished."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from aggregator.pipelines.progress import with_progress
from aggregator_tests.testapi import running_api
from connectors.batches import Batch, ColumnType


def _batches(n: int, rows: int) -> Iterator[Batch]:
    for i in range(n):
        yield Batch(columns=("id",), types={"id": ColumnType.INTEGER}, rows=[(j,) for j in range(rows)],
                    origin=f"page {i}")


def test_progress_lines_follow_the_interval_not_the_batches() -> None:
    """Batches every 4 s and an interval of 10 s: a line after the 3rd and the 6th batch (12 s, 24 s), with
    the rows so far and the rate over the whole load."""
    ticks = iter(range(0, 100, 4))
    lines: list[str] = []
    passed = list(with_progress(_batches(7, 100), lines.append, "x", every_s=10, clock=lambda: float(next(ticks))))
    assert len(passed) == 7  # every batch goes through unchanged
    assert lines == [
        "x: 300 rows so far (25 rows/s), 3 batch(es), 3 file(s)/endpoint(s), 12 s",
        "x: 600 rows so far (25 rows/s), 6 batch(es), 6 file(s)/endpoint(s), 24 s",
    ]


SPEC = """
connections:
  api: {{type: rest, config: {{base_url: "{url}", requests_per_second: 100}}}}
pipelines:
  - name: paged
    sources:
      - name: items
        connection: api
        stream:
          type: rest
          path: items/page_number
          records_path: data
          batch_size: 10
          pagination: {{type: page_number, page_size: 10, total_pages_path: total_pages}}
"""


def test_progress_is_in_the_runs_event_log_before_the_materialization(
    spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_PROGRESS_SECONDS", "0")  # a line per batch: the API answers in milliseconds
    with running_api() as api:
        (spec_dir / "paged.yaml").write_text(SPEC.format(url=api.url))
        defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
        with dg.DagsterInstance.ephemeral() as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
            events = [e.dagster_event.event_type_value if e.dagster_event else e.user_message
                      for e in instance.all_logs(result.run_id)]
    progress = [m for m in events if "rows so far" in m]
    assert [p.split(": ")[1].split(" rows")[0] for p in progress][:3] == ["10", "20", "25"], progress
    assert events.index(progress[-1]) < events.index("ASSET_MATERIALIZATION")
