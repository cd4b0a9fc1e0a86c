"""Schedules, file sensors, declarative automation, templates and cross-pipeline dependencies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query

# The sensor watches `inbox` under the uploads root (AGGREGATOR_HOME/uploads, HOME below); the connection
# reads the same directory, named relative to the spec file.
BASE = """
connections:
  drop:
    type: files
    config: {base_dir: ../home/uploads/inbox}
pipelines:
  - name: ingest
    schedule: {cron: "15 6 * * *", timezone: Europe/Berlin}
    sensor: {directory: inbox, pattern: "*.csv", interval_seconds: 30}
    sources:
      - {name: events, connection: drop, stream: {type: file, path: "*.csv"}, write_mode: replace}
  - name: reporting
    automation: eager
    schedule: {cron: "0 7 * * *", enabled: false}
    transforms:
      - name: event_counts
        sql: SELECT kind, COUNT(*) AS n FROM {{ ref('ingest.events') }} GROUP BY kind
"""


@pytest.fixture
def defs(spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> dg.Definitions:
    inbox = tmp_path / "home" / "uploads" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "a.csv").write_text("id,kind\n1,click\n2,view\n3,click\n")
    (spec_dir / "pipelines.yaml").write_text(BASE)
    return compile_specs(f"sqlite:///{tmp_path / 'w.db'}")


def test_schedule_targets_the_pipeline_job_in_its_timezone(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("ingest_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 6 * * *", "Europe/Berlin")
    assert schedule.job_name == "ingest_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_schedule_def("reporting_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 25, 6, 15, tzinfo=dt.UTC)
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests or []
    assert len(requests) == 1


def test_file_sensor_requests_a_run_for_new_files_once(defs: dg.Definitions, tmp_path: Path) -> None:
    sensor = defs.resolve_sensor_def("ingest_files_sensor")
    with dg.instance_for_test() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert first.run_requests is not None and len(first.run_requests) == 1 and first.cursor
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
        assert again.run_requests == [] and again.skip_message
        (tmp_path / "home" / "uploads" / "inbox" / "b.csv").write_text("id,kind\n4,view\n")
        third = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
        assert third.run_requests is not None and len(third.run_requests) == 1
        assert third.run_requests[0].run_key != first.run_requests[0].run_key
        assert third.run_requests[0].tags["aggregator/new_files"] == "1"


def test_cross_pipeline_dependency_is_an_edge_and_selectable(defs: dg.Definitions, tmp_path: Path) -> None:
    graph = defs.resolve_asset_graph()
    counts = dg.AssetKey(["reporting", "event_counts"])
    assert graph.get(counts).parent_keys == {dg.AssetKey(["ingest", "events"])}
    selected = dg.AssetSelection.from_string("+key:reporting/event_counts").resolve(graph)
    assert selected == {counts, dg.AssetKey(["ingest", "events"])}
    materialize_all(defs)
    assert sorted(query(f"sqlite:///{tmp_path / 'w.db'}", "SELECT kind, n FROM reporting_event_counts")) == [
        ("click", 2), ("view", 1)
    ]


def test_eager_automation_is_set_on_transforms(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["reporting", "event_counts"])).automation_condition is not None
    assert graph.get(dg.AssetKey(["ingest", "events"])).automation_condition is None


TEMPLATE = """
connections:
  drop: {type: files, config: {base_dir: inbox}}
templates:
  regional:
    params: [region, min_rows]
    pipeline:
      name: "sales_${region}"
      description: "Sales for ${region}"
      tags: {region: "${region}"}
      sources:
        - name: orders
          connection: drop
          stream: {type: file, path: "${region}.csv"}
          checks: [{type: row_count, min: "${min_rows}"}]
pipelines:
  - {use: regional, with: {region: eu, min_rows: 2}}
  - {use: regional, with: {region: us, min_rows: 1}}
"""


def test_template_instances_are_separate_pipelines(spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> None:
    (spec_dir / "inbox").mkdir()
    (spec_dir / "inbox" / "eu.csv").write_text("id\n1\n2\n")
    (spec_dir / "inbox" / "us.csv").write_text("id\n1\n")
    (spec_dir / "regional.yaml").write_text(TEMPLATE)
    defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {"sales_eu/orders", "sales_us/orders"}
    assert graph.get(dg.AssetKey(["sales_eu", "orders"])).group_name == "sales_eu"
    result = materialize_all(defs)
    # Not `all(...)` alone: that is also true when no check ran at all.
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {("sales_eu/orders", "row_count"): True, ("sales_us/orders", "row_count"): True}
    assert query(f"sqlite:///{tmp_path / 'w.db'}", "SELECT COUNT(*) FROM sales_eu_orders") == [(2,)]
