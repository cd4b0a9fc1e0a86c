"""Nested records into parent + child tables (connectors/nested.py, destinations/child_tables.py), on SQLite
and PostgreSQL: documents come back exactly, merge replaces a record's children, a failed load leaves every
table as it was."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.destinations.child_tables import child_table_name
from aggregator.destinations.errors import DestinationError, SchemaChangeError
from aggregator.destinations.sql import SqlDestination
from aggregator_tests.helpers import warehouse_for
from aggregator_tests.nested_docs import rebuild, records
from connectors.batches import Batch
from connectors.nested import NestedData, NestedTracker

_tables = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Child tables are written on SQLite and PostgreSQL; a MySQL warehouse refuses them (the test below)."""
    return warehouse_for(request, tmp_path)


def batches(docs: Sequence[dict[str, Any]], size: int, config: NestedData | None = None) -> Iterator[Batch]:
    tracker = NestedTracker(config or NestedData())
    for start in range(0, len(docs), size):
        yield tracker.from_records(docs[start:start + size], origin="test")


def canonical(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True, ensure_ascii=False) for d in docs)


def stored(dest: SqlDestination, table: str) -> list[dict[str, Any]]:
    with dest.engine.connect() as conn:
        return rebuild(conn, table)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=records(), size=st.integers(1, 4))
def test_round_trip_rebuilds_the_documents(dest: SqlDestination, docs: list[dict[str, Any]], size: int) -> None:
    """Any schema-consistent nesting of objects, arrays of scalars/objects/arrays comes back exactly, whatever
    the batch size (types carry over between batches in every child table)."""
    table = f"nest_{next(_tables)}"
    dest.load(table, batches(docs, size), "append")
    assert canonical(stored(dest, table)) == canonical(docs)


ORDERS = [
    {"id": 1, "customer": {"name": "Ada", "address": {"city": "Oslo"}},
     "items": [{"sku": "a", "qty": 2, "tags": ["x", "y"]}, {"sku": "b", "qty": 1, "tags": []}]},
    {"id": 2, "customer": {"name": "Bo", "address": {"city": "Rome"}}, "items": [{"sku": "c", "qty": 5}]},
]


def columns(dest: SqlDestination, table: str) -> list[str]:
    return [c["name"] for c in sa.inspect(dest.engine).get_columns(table)]


def test_names_are_dlts(dest: SqlDestination) -> None:
    """`parent__child` columns, child tables `<table>__<field>` with dlt's link columns."""
    dest.load("shop_orders", batches(ORDERS, 10), "append")
    assert columns(dest, "shop_orders") == ["id", "customer__name", "customer__address__city", "_dlt_id"]
    assert columns(dest, "shop_orders__items") == [
        "sku", "qty", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"]
    assert columns(dest, "shop_orders__items__tags") == [
        "value", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"]
    with dest.engine.connect() as conn:
        joined = conn.execute(sa.text(
            "SELECT o.id, i.sku, i._dlt_list_idx FROM shop_orders o JOIN shop_orders__items i "
            "ON i._dlt_parent_id = o._dlt_id ORDER BY o.id, i._dlt_list_idx")).all()
    assert [tuple(r) for r in joined] == [(1, "a", 0), (1, "b", 1), (2, "c", 0)]


def test_max_depth_keeps_deeper_values_as_json(dest: SqlDestination) -> None:
    dest.load("shop_orders", batches(ORDERS, 10, NestedData(max_depth=1)), "append")
    assert columns(dest, "shop_orders") == ["id", "customer__name", "customer__address", "_dlt_id"]
    assert columns(dest, "shop_orders__items") == [
        "sku", "qty", "tags", "_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx", "_dlt_id"]
    with dest.engine.connect() as conn:
        city = conn.execute(sa.text("SELECT customer__address FROM shop_orders WHERE id = 1")).scalar_one()
    assert json.loads(city) == {"city": "Oslo"}


def test_arrays_as_json_flatten_only_objects(dest: SqlDestination) -> None:
    dest.load("shop_orders", batches(ORDERS, 10, NestedData(arrays="json")), "append")
    assert columns(dest, "shop_orders") == ["id", "customer__name", "customer__address__city", "items"]
    assert not sa.inspect(dest.engine).has_table("shop_orders__items")


@pytest.mark.parametrize("size", [1, 10])
def test_merge_replaces_a_records_children(dest: SqlDestination, size: int) -> None:
    """An updated record's children (and grandchildren) are exactly its new ones; other records' are kept;
    of a key sent twice in one load, the last version wins for the row and for its children."""
    dest.load("shop_orders", batches(ORDERS, size), "merge", primary_key=("id",))
    update = [
        {"id": 1, "customer": {"name": "Ada", "address": {"city": "Bergen"}}, "items": [{"sku": "z", "qty": 9}]},
        {"id": 3, "customer": {"name": "Cy", "address": {"city": "Nice"}}, "items": [{"sku": "q", "qty": 1, "tags": ["t"]}]},
        {"id": 3, "customer": {"name": "Cy", "address": {"city": "Nice"}}, "items": [{"sku": "r", "qty": 2}]},
    ]
    result = dest.load("shop_orders", batches(update, size), "merge", primary_key=("id",))
    expected = [update[0], ORDERS[1], update[2]]
    assert canonical(stored(dest, "shop_orders")) == canonical(_without_empty(expected))
    # One batch keeps only the last version's children; one record per batch writes both, then replaces.
    assert result.child_tables["shop_orders__items"] == (3 if size == 1 else 2)


def _without_empty(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents as tables hold them: empty arrays leave nothing."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v != []}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return [clean(d) for d in docs]


def test_replace_rebuilds_children_and_empties_unsent_child_tables(dest: SqlDestination) -> None:
    dest.load("shop_orders", batches(ORDERS, 10), "replace")
    dest.load("shop_orders", batches([{"id": 7, "customer": {"name": "Di", "address": {"city": "Kyiv"}},
                                       "items": [{"sku": "k", "qty": 3}]}], 10), "replace")
    assert stored(dest, "shop_orders") == [{"id": 7, "customer": {"name": "Di", "address": {"city": "Kyiv"}},
                                            "items": [{"sku": "k", "qty": 3}]}]
    with dest.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM shop_orders__items__tags")).scalar_one() == 0


def test_failed_load_rolls_back_children(dest: SqlDestination) -> None:
    """A load that fails after parent and child rows were written leaves all three tables as they were."""
    dest.load("shop_orders", batches(ORDERS, 10), "append")
    before = canonical(stored(dest, "shop_orders"))

    def failing() -> Iterator[Batch]:
        yield from batches([{"id": 5, "customer": {"name": "E", "address": {"city": "Y"}},
                             "items": [{"sku": "n", "qty": 1, "tags": ["new"]}]}], 10)
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        dest.load("shop_orders", failing(), "append")
    assert canonical(stored(dest, "shop_orders")) == before


def test_child_type_change_follows_the_schema_policy(dest: SqlDestination) -> None:
    """A child table's columns obey the source's schema_policy like the parent's, and roll back with it."""
    dest.load("shop_orders", batches(ORDERS, 10), "append")
    bad = [{"id": 9, "customer": {"name": "F", "address": {"city": "Z"}}, "items": [{"sku": "m", "qty": "many"}]}]
    with pytest.raises(SchemaChangeError, match="shop_orders__items.*qty"):
        dest.load("shop_orders", batches(bad, 10), "append", schema_policy="evolve")
    assert canonical(stored(dest, "shop_orders")) == canonical(_without_empty(ORDERS))


def test_long_names_are_shortened_stably() -> None:
    long = "a" * 40
    name = child_table_name("shop_orders", f"{long}__{long}")
    assert len(name) == 63 and name.startswith("shop_orders__aaaa")
    assert child_table_name("shop_orders", f"{long}__{long}") == name
    assert child_table_name("shop_orders", f"{long}__{long}b") != name
    with pytest.raises(SchemaChangeError, match="shorter `table:`"):
        child_table_name("t" * 55, "items")


def test_mysql_refuses_child_tables_before_writing_anything(mysql_url: str) -> None:
    """Child tables are not staged on MySQL yet (aggregator/destinations/staged.py): the load says so and what to
    set instead, and leaves no table behind; nested objects (columns of the parent) do load."""
    dest = SqlDestination(url=mysql_url)
    with pytest.raises(DestinationError, match=r"child tables are not supported on a MySQL.*nested.arrays to 'json'"):
        dest.load("orders", batches(ORDERS, 1), "append")
    with dest.engine.connect() as conn:
        assert "orders" not in sa.inspect(conn).get_table_names()
    flat = dest.load("orders", batches(ORDERS, 1, NestedData(arrays="json")), "append")
    assert flat.rows_written == 2 and "customer__address__city" in [c for c, _ in flat.table.columns]
