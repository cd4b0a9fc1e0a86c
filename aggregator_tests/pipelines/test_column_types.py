"""Column types from a REST source through a compiled pipeline: ISO-8601 detection, declared types, and
schema changes recorded in the materialization metadata and the run log (issue 10, items 2 and 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from aggregator.destinations.sql import SqlDestination
from aggregator_tests.helpers import materialize_all
from aggregator_tests.testapi import LocalApi, running_api

SPEC = """
connections:
  local_api:
    type: rest
    config: {{base_url: {base_url}}}
pipelines:
  - name: shop
    sources:
      - name: items
        connection: local_api
        stream: {{type: rest, path: items/offset, records_path: items, pagination: {{type: offset, limit: 10}}}}
        write_mode: append
{extra}
"""


@pytest.fixture
def api() -> Iterator[LocalApi]:
    with running_api() as local:
        yield local


def _types(warehouse_url: str, table: str) -> dict[str, str]:
    info = SqlDestination(url=warehouse_url).describe(table)
    return {name: sql_type.upper() for name, sql_type in info.columns}


TIMESTAMP = ("DATETIME", "TIMESTAMP")


def test_json_timestamps_land_as_timestamps_not_text(
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    """The reported case: `updated_at: "2024-01-01T00:00:00"` from a REST source was stored as text, so
    time buckets and freshness worked on strings. ISO-8601 strings are now typed, in both dialects."""
    api.state.items[0]["updated_at"] = "2024-01-01T16:39:00Z"
    (spec_dir / "shop.yaml").write_text(SPEC.format(base_url=api.url, extra=""))
    materialize_all(compile_specs(warehouse_url))
    types = _types(warehouse_url, "shop_items")
    assert types["updated_at"] in TIMESTAMP
    assert types["name"] == "TEXT"
    with SqlDestination(url=warehouse_url).engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT updated_at FROM shop_items ORDER BY id LIMIT 2").all()
    assert [str(r[0])[:19] for r in rows] == ["2024-01-01 16:39:00", "2024-01-02 00:00:00"]


def test_declared_column_types_win_and_detection_can_be_switched_off(
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    """`columns:` declares types that win over inference; `detect_timestamps: false` keeps strings as text."""
    extra = """        columns: {id: {type: text}, price: {type: float}, active: {type: text}}
        detect_timestamps: false"""
    (spec_dir / "shop.yaml").write_text(SPEC.format(base_url=api.url, extra=extra))
    materialize_all(compile_specs(warehouse_url))
    types = _types(warehouse_url, "shop_items")
    assert types["id"] == "TEXT"
    assert types["updated_at"] == "TEXT"
    assert types["active"] == "TEXT"
    assert types["price"] in ("DOUBLE", "DOUBLE PRECISION", "FLOAT")
    with SqlDestination(url=warehouse_url).engine.connect() as conn:
        first = conn.exec_driver_sql("SELECT id, updated_at, active FROM shop_items ORDER BY price LIMIT 1").one()
    assert tuple(first) == ("1", "2024-01-01T00:00:00", "false")


def test_a_declared_type_the_data_does_not_fit_fails_naming_the_column(
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    """A value that cannot be converted to its declared type fails the load with the column and the value."""
    extra = "        columns: {name: {type: integer}}"
    (spec_dir / "shop.yaml").write_text(SPEC.format(base_url=api.url, extra=extra))
    with pytest.raises(Exception, match=r"column 'name' is declared integer .* 'item 1' is not a integer"):
        materialize_all(compile_specs(warehouse_url))


def test_schema_changes_are_in_the_metadata_and_the_run_log(
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
    instance: dg.DagsterInstance,
) -> None:
    """Every evolution (a new column, a widening) is recorded on the materialization and logged."""
    (spec_dir / "shop.yaml").write_text(SPEC.format(base_url=api.url, extra=""))
    materialize_all(compile_specs(warehouse_url), instance)
    for i, item in enumerate(api.state.items):
        item["id"] = i + 0.5  # integer -> float: a safe widening
        item["note"] = f"n{i}"  # a new column
    result = materialize_all(compile_specs(warehouse_url), instance)
    (event,) = result.get_asset_materialization_events()
    changes = event.materialization.metadata["schema_changes"].value
    assert changes == ["widened id from integer to float", "added column note (text)"]
    logged = [e.message for e in instance.all_logs(result.run_id) if "schema change" in (e.message or "")]
    assert any("widened id from integer to float" in m for m in logged)
    assert any("added column note (text)" in m for m in logged)
    assert _types(warehouse_url, "shop_items")["id"] in ("DOUBLE", "DOUBLE PRECISION", "FLOAT")


REPLACE_SPEC = """
connections:
  local_api:
    type: rest
    config: {{base_url: {base_url}}}
pipelines:
  - name: shop
    sources:
      - name: items
        connection: local_api
        stream: {{type: rest, path: items/offset, records_path: items, pagination: {{type: offset, limit: 10}}}}
        write_mode: replace
        primary_key: [id]
        schema_policy: {{changes: evolve, missing_columns: {missing}}}
"""


@pytest.mark.parametrize("missing", ["keep", "fail"])
def test_a_dropped_and_a_renamed_column_are_reported_and_replace_keeps_their_values(
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
    missing: str, instance: dg.DagsterInstance,
) -> None:
    """The reported case: `active` dropped and `name` renamed to `title` at the source; replace mode set every
    previous value to NULL and said only `added column title`."""
    (spec_dir / "shop.yaml").write_text(REPLACE_SPEC.format(base_url=api.url, missing=missing))
    materialize_all(compile_specs(warehouse_url), instance)
    for item in api.state.items:
        del item["active"]
        item["title"] = item.pop("name")
    if missing == "fail":
        with pytest.raises(Exception, match=r"no longer sends column\(s\) name, active .*'fail'"):
            materialize_all(compile_specs(warehouse_url), instance)
        assert "title" not in _types(warehouse_url, "shop_items")
        return
    result = materialize_all(compile_specs(warehouse_url), instance)
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["missing_columns"].value == ["name", "active"]
    assert metadata["schema_changes"].value == [
        "added column title (text)",
        "column name is no longer sent: kept its values for 25 row(s) by id",
        "column active is no longer sent: kept its values for 25 row(s) by id",
    ]
    logged = [e.message for e in instance.all_logs(result.run_id) if "schema change" in (e.message or "")]
    assert any("column active is no longer sent" in m and "missing_columns keep" in m for m in logged)
    with SqlDestination(url=warehouse_url).engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT name, title, active FROM shop_items WHERE id = 2").one()
    assert tuple(row) == ("item 2", "item 2", True)
