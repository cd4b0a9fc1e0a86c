"""A Prometheus collector over Dagster's event log that reads only what is new since the last scrape."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.events import DagsterEventType
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aggregator.event_feed import FeedCursor, read_new
from aggregator.pipelines.run_tags import PIPELINE_TAG

# Events read per type and scrape: after a long gap the collector catches up over a few scrapes instead of
# holding one scrape for a full history read.
BATCH = 5000
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
TERMINAL = {
    DagsterEventType.RUN_SUCCESS: "success",
    DagsterEventType.RUN_FAILURE: "failure",
    DagsterEventType.RUN_CANCELED: "canceled",
}


@dataclass
class State:
    """Everything derived so far, and the storage ids (cursors) it was derived up to."""

    cursors: dict[str, FeedCursor] = field(default_factory=dict)
    runs: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    durations: dict[str, list[int]] = field(default_factory=dict)  # pipeline -> bucket counts (+Inf last)
    duration_sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rows: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    last_load: dict[tuple[str, str], float] = field(default_factory=dict)
    checks: dict[tuple[str, str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    check_passing: dict[tuple[str, str], int] = field(default_factory=dict)


def _pipeline_of(asset: dg.AssetKey) -> str:
    return asset.path[0] if len(asset.path) > 1 else ""


class DagsterCollector(Collector):
    """Runs, durations, rows loaded, last load time and check results, incrementally by event storage id."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.state = State()
        self._lock = threading.Lock()
        self._read = 0

    def _records(self, event_type: DagsterEventType) -> list[dg.EventLogRecord]:
        cursor = self.state.cursors.setdefault(event_type.value, FeedCursor())
        records = read_new(self.instance, [event_type], cursor, BATCH)
        self._read += len(records)
        return records

    def refresh(self) -> int:
        """Fold in events since the last call; bounded by BATCH per event type. Returns how many were read."""
        with self._lock:
            self._read = 0
            self._refresh_runs()
            self._refresh_materializations()
            self._refresh_checks()
            return self._read

    def catch_up(self) -> None:
        """Read the whole history before the first scrape is answered. Served part-way, a restarted process
        exposed counters below the previous process's values: Prometheus reads a drop as a reset, and
        `increase()` then counted the history read so far as new failures."""
        while self.refresh():
            pass

    def _refresh_runs(self) -> None:
        records = [(r, TERMINAL[event_type]) for event_type in TERMINAL for r in self._records(event_type)]
        if not records:
            return
        run_ids = list({r.run_id for r, _ in records})
        runs = {rec.dagster_run.run_id: rec for rec in self.instance.get_run_records(dg.RunsFilter(run_ids=run_ids))}
        for record, status in records:
            run_record = runs.get(record.run_id)
            if run_record is None:
                continue
            run = run_record.dagster_run
            pipeline = run.tags.get(PIPELINE_TAG) or run.job_name
            self.state.runs[(pipeline, status)] += 1
            if run_record.start_time and run_record.end_time:
                seconds = max(0.0, run_record.end_time - run_record.start_time)
                buckets = self.state.durations.setdefault(pipeline, [0] * (len(DURATION_BUCKETS) + 1))
                index = next((i for i, b in enumerate(DURATION_BUCKETS) if seconds <= b), len(DURATION_BUCKETS))
                buckets[index] += 1
                self.state.duration_sums[pipeline] += seconds

    def _refresh_materializations(self) -> None:
        for record in self._records(DagsterEventType.ASSET_MATERIALIZATION):
            materialization = record.asset_materialization
            if materialization is None:
                continue
            asset = materialization.asset_key
            key = (_pipeline_of(asset), asset.to_user_string())
            self.state.last_load[key] = record.timestamp
            table = materialization.metadata.get("dagster/table_name")
            written = materialization.metadata.get("rows_written")
            if table is not None and written is not None and isinstance(written.value, int | float):
                self.state.rows[(key[0], str(table.value))] += float(written.value)

    def _refresh_checks(self) -> None:
        for record in self._records(DagsterEventType.ASSET_CHECK_EVALUATION):
            event = record.event_log_entry.dagster_event
            evaluation = event.asset_check_evaluation_data if event else None
            if evaluation is None:
                continue
            asset = evaluation.asset_key.to_user_string()
            outcome = "passed" if evaluation.passed else "failed"
            self.state.checks[(asset, evaluation.check_name, outcome, evaluation.severity.value)] += 1
            self.state.check_passing[(asset, evaluation.check_name)] = int(evaluation.passed)

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        state = self.state
        runs = CounterMetricFamily("aggregator_runs", "Finished pipeline runs by status.", labels=["pipeline", "status"])
        for (pipeline, status), count in sorted(state.runs.items()):
            runs.add_metric([pipeline, status], count)
        yield runs
        duration = HistogramMetricFamily("aggregator_run_duration_seconds", "Wall time of finished runs.",
                                         labels=["pipeline"])
        for pipeline, counts in sorted(state.durations.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*map(str, DURATION_BUCKETS), "+Inf"), counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric([pipeline], buckets, state.duration_sums[pipeline])
        yield duration
        rows = CounterMetricFamily("aggregator_rows_loaded", "Rows written into destination tables.",
                                   labels=["pipeline", "table"])
        for (pipeline, table), rows_written in sorted(state.rows.items()):
            rows.add_metric([pipeline, table], rows_written)
        yield rows
        last = GaugeMetricFamily("aggregator_asset_last_materialization_timestamp_seconds",
                                 "Unix time of the asset's last successful materialization.",
                                 labels=["pipeline", "asset"])
        for (pipeline, asset), ts in sorted(state.last_load.items()):
            last.add_metric([pipeline, asset], ts)
        yield last
        checks = CounterMetricFamily("aggregator_asset_check_evaluations", "Asset check evaluations by outcome.",
                                     labels=["asset", "check", "outcome", "severity"])
        for check_labels, count in sorted(state.checks.items()):
            checks.add_metric(list(check_labels), count)
        yield checks
        passing = GaugeMetricFamily("aggregator_asset_check_passing", "1 if the latest evaluation passed, else 0.",
                                    labels=["asset", "check"])
        for passing_labels, value in sorted(state.check_passing.items()):
            passing.add_metric(list(passing_labels), value)
        yield passing
