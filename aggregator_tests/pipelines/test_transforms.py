"""Transforms: SQL with refs and every declarative step, materialized on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query

READINGS = [
    # id, station, observed_at, temperature  (id 3 appears twice: the later copy must win the dedupe)
    (1, "s1", "2026-09-01 00:10:00", 10.0),
    (2, "s1", "2026-09-01 00:50:00", 12.0),
    (3, "s2", "2026-09-01 01:05:00", 20.0),
    (3, "s2", "2026-09-01 01:06:00", 21.0),
    (4, "s2", "2026-09-02 13:00:00", None),
    (5, "s3", "2026-09-08 09:00:00", 30.0),
]
STATIONS = [("s1", "Alpha", "DE"), ("s2", "Beta", "FR"), ("s3", "Gamma", "DE")]

SPEC = """
connections:
  weather_files:
    type: files
    config: {base_dir: data}
pipelines:
  - name: weather
    sources:
      - {name: readings, connection: weather_files, stream: {type: file, path: readings.csv}}
      - {name: stations, connection: weather_files, stream: {type: file, path: stations.csv}}
    transforms:
      - name: clean_readings
        from: readings
        steps:
          - filter: temperature IS NOT NULL
          - dedupe: {key: [id], order_by: observed_at DESC}
          - derive: {temp_f: temperature * 9 / 5 + 32}
          - join: {ref: stations, keys: {station: id}, columns: [name, country]}
          - rename: {name: station_name}
          - cast: {temperature: integer}
      - name: hourly_by_country
        from: clean_readings
        steps:
          - time_bucket: {column: observed_at, grain: hour, as: hour}
          - aggregate:
              group_by: [country, hour]
              metrics: {readings: COUNT(*), max_temp: MAX(temperature)}
      - name: weekly
        from: clean_readings
        steps:
          - time_bucket: {column: observed_at, grain: week}
          - aggregate: {group_by: [observed_at_week], metrics: {n: COUNT(*)}}
          - select: [observed_at_week, n]
      - name: monthly
        sql: |
          SELECT country, COUNT(*) AS readings FROM {{ ref('clean_readings') }} GROUP BY country
"""


@pytest.fixture
def warehouse_url(load_warehouse_url: str) -> str:
    """Every dialect pipelines load into, MySQL/MariaDB too: transforms run where the loads land."""
    return load_warehouse_url


@pytest.fixture
def weather_spec(spec_dir: Path) -> Path:
    data = spec_dir / "data"
    data.mkdir()
    with (data / "readings.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "station", "observed_at", "temperature"])
        writer.writerows([(i, s, t, "" if v is None else v) for i, s, t, v in READINGS])
    with (data / "stations.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name", "country"])
        writer.writerows(STATIONS)
    (spec_dir / "weather.yaml").write_text(SPEC)
    return spec_dir


def test_steps_produce_the_expected_tables(
    weather_spec: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    defs = compile_specs(warehouse_url)
    materialize_all(defs)

    clean = query(warehouse_url, "SELECT id, station_name, country, temperature, temp_f FROM weather_clean_readings ORDER BY id")
    assert clean == [
        (1, "Alpha", "DE", 10, 50.0),
        (2, "Alpha", "DE", 12, 53.6),
        (3, "Beta", "FR", 21, 69.8),  # the later duplicate won; the NULL reading was filtered out
        (5, "Gamma", "DE", 30, 86.0),
    ]
    hourly = query(warehouse_url, "SELECT country, hour, readings, max_temp FROM weather_hourly_by_country ORDER BY country, hour")
    expected: dict[tuple[str, str], list[int]] = defaultdict(list)
    names = {s: c for s, _, c in STATIONS}
    for _id, station, ts, temp in READINGS:
        if temp is not None and not (_id == 3 and ts.endswith("01:05:00")):
            expected[(names[station], ts[:13])].append(int(temp))
    assert [(c, str(h)[:13], n, m) for c, h, n, m in hourly] == [
        (c, h, len(v), max(v)) for (c, h), v in sorted(expected.items())
    ]
    weekly = query(warehouse_url, "SELECT observed_at_week, n FROM weather_weekly ORDER BY 1")
    # 2026-09-01 is a Tuesday: its week starts Monday 2026-08-31; 2026-09-08 starts the week of 09-07.
    assert [(str(w)[:10], n) for w, n in weekly] == [("2026-08-31", 3), ("2026-09-07", 1)]
    assert sorted(query(warehouse_url, "SELECT country, readings FROM weather_monthly")) == [("DE", 3), ("FR", 1)]


def test_transform_dependencies_become_asset_edges(weather_spec: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path) -> None:
    graph = compile_specs(f"sqlite:///{tmp_path / 'w.db'}").resolve_asset_graph()
    key = dg.AssetKey
    assert graph.get(key(["weather", "clean_readings"])).parent_keys == {key(["weather", "readings"]), key(["weather", "stations"])}
    assert graph.get(key(["weather", "hourly_by_country"])).parent_keys == {key(["weather", "clean_readings"])}


def test_transform_columns_have_real_types_on_both_dialects(
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    """Issue 11.7: SQLite's CREATE TABLE … AS SELECT declares no type for computed columns, so the UI showed
    NULL for every aggregate and schema_drift compared NULLs. Each column now reports a real type."""
    (spec_dir / "data").mkdir()
    (spec_dir / "data" / "sales.csv").write_text("region,qty,price\nnorth,2,1.5\nsouth,3,2.0\nnorth,1,4.25\n")
    (spec_dir / "typed.yaml").write_text("""
connections:
  f: {type: files, config: {base_dir: data}}
pipelines:
  - name: typed
    sources:
      - {name: sales, connection: f, stream: {type: file, path: sales.csv}}
    transforms:
      - name: totals
        sql: >
          SELECT region, COUNT(*) AS n, SUM(qty) AS units, SUM(qty * price) AS revenue,
                 UPPER(region) AS label FROM {{ ref('sales') }} GROUP BY region
""")
    result = materialize_all(compile_specs(warehouse_url))
    totals = next(e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(["typed", "totals"]))
    schema = totals.materialization.metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    types = {c.name: c.type.upper() for c in schema.columns}
    assert all(t and t != "NULL" for t in types.values()), types
    assert any(word in types["n"] for word in ("INT", "BIGINT")), types
    assert any(word in types["revenue"] for word in ("REAL", "DOUBLE", "NUMERIC", "FLOAT")), types
    assert "TEXT" in types["label"] or "CHAR" in types["label"], types
    assert query(warehouse_url, "SELECT region, n, units FROM typed_totals ORDER BY region") == [
        ("north", 2, 3), ("south", 1, 3)]
