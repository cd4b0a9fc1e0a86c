"""Every check type passes on good data and fails on bad data; a blocking failure stops downstream."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from aggregator_tests.helpers import key_of, materialize_all

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
ROWS = [
    (1, "north", 10.5, NOW - dt.timedelta(hours=1)),
    (2, "south", None, NOW - dt.timedelta(hours=3)),
    (3, "south", 7.0, NOW - dt.timedelta(hours=2)),
]

SPEC = """
connections:
  files: {type: files, config: {base_dir: data}}
pipelines:
  - name: shop
    sources:
      - name: orders
        connection: files
        stream: {type: file, path: orders.csv}
        checks:
          - {type: not_null, columns: [id, region]}
          - {type: not_null, name: amount_present, columns: [amount]}
          - {type: unique, columns: [id]}
          - {type: unique, name: one_per_region, columns: [region]}
          - {type: accepted_values, column: region, values: [north, south]}
          - {type: accepted_values, name: only_north, column: region, values: [north]}
          - {type: row_count, min: 1, max: 10}
          - {type: row_count, name: at_least_100, min: 100}
          - {type: freshness, column: ordered_at, max_age: 2h}
          - {type: freshness, name: within_a_minute, column: ordered_at, max_age: 1m}
          - {type: schema_drift}
    transforms:
      - name: totals
        sql: SELECT region, SUM(amount) AS amount FROM {{ ref('orders') }} GROUP BY region
"""

EXPECTED = {
    "not_null_id_region": True, "amount_present": False,
    "unique_id": True, "one_per_region": False,
    "accepted_values_region": True, "only_north": False,
    "row_count": True, "at_least_100": False,
    "freshness_ordered_at": True, "within_a_minute": False,
    "schema_drift": True,
}


def write_orders(spec_dir: Path, extra_column: bool = False) -> None:
    data = spec_dir / "data"
    data.mkdir(exist_ok=True)
    with (data / "orders.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "region", "amount", "ordered_at", *(["channel"] if extra_column else [])])
        for i, region, amount, ts in ROWS:
            writer.writerow([i, region, "" if amount is None else amount, ts.isoformat(sep=" "), *(["web"] if extra_column else [])])


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_each_check_passes_and_fails(spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]) -> None:
    write_orders(spec_dir)
    (spec_dir / "shop.yaml").write_text(SPEC)
    result = materialize_all(compile_specs(warehouse_url))
    assert evaluations(result) == EXPECTED


def test_schema_drift_fails_when_a_column_appears(instance: dg.DagsterInstance, spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    write_orders(spec_dir)
    (spec_dir / "shop.yaml").write_text(SPEC)
    assert evaluations(materialize_all(compile_specs(url), instance))["schema_drift"] is True
    write_orders(spec_dir, extra_column=True)
    second = evaluations(materialize_all(compile_specs(url), instance))
    assert second["schema_drift"] is False
    (spec_dir / "shop.yaml").write_text(SPEC.replace("{type: schema_drift}", "{type: schema_drift, allow_added: true}"))
    assert evaluations(materialize_all(compile_specs(url), instance))["schema_drift"] is True


def test_a_failing_blocking_check_stops_downstream(instance: dg.DagsterInstance, spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> None:
    write_orders(spec_dir)
    (spec_dir / "shop.yaml").write_text(SPEC.replace("{type: row_count, name: at_least_100, min: 100}",
                                                     "{type: row_count, name: at_least_100, min: 100, blocking: true}"))
    defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    materialized = {key_of(e) for e in result.get_asset_materialization_events()}
    assert materialized == {"shop/orders"}, "the transform must not run after a blocking check failed"
