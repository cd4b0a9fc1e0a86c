"""The bundled sample pipeline materializes into the SQLite warehouse with the right numbers."""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import dagster as dg
import pytest

from aggregator.settings import EXAMPLE_PIPELINES_DIR
from aggregator_tests.helpers import key_of, materialize_all, table_schema
from aggregator_tests.test_definitions import load_defs

CSV = EXAMPLE_PIPELINES_DIR / "data" / "sales_orders.csv"


def expected_daily_sales() -> dict[tuple[str, str], tuple[int, int, Decimal]]:
    """Computed straight from the CSV with Decimal, independently of the pipeline's SQL."""
    acc: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, Decimal(0)])
    with CSV.open(newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["ordered_at"][:10], row["region"])
            acc[key][0] += 1
            acc[key][1] += int(row["quantity"])
            acc[key][2] += int(row["quantity"]) * Decimal(row["unit_price"])
    return {k: (o, u, r.quantize(Decimal("0.01"), ROUND_HALF_EVEN)) for k, (o, u, r) in acc.items()}


def warehouse_rows(home: Path, table: str) -> list[tuple]:
    with sqlite3.connect(home / "warehouse.db") as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


@pytest.fixture
def materialized(aggregator_home: Path) -> dg.ExecuteInProcessResult:
    return materialize_all(load_defs())


def test_raw_orders_are_loaded_with_types(materialized: dg.ExecuteInProcessResult, aggregator_home: Path) -> None:
    with CSV.open() as fh:
        source_rows = sum(1 for _ in fh) - 1
    with sqlite3.connect(aggregator_home / "warehouse.db") as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM sales_orders").fetchone() == (
            source_rows,
            source_rows,
        )
        assert conn.execute("SELECT typeof(quantity), typeof(unit_price) FROM sales_orders LIMIT 1").fetchone() == (
            "integer",
            "real",
        )


def test_daily_aggregate_matches_independent_computation(
    materialized: dg.ExecuteInProcessResult, aggregator_home: Path
) -> None:
    expected = expected_daily_sales()
    rows = warehouse_rows(aggregator_home, "sales_daily_sales")
    actual = {(day, region): (orders, units, Decimal(str(revenue))) for day, region, orders, units, revenue in rows}
    assert actual == expected


def test_materializations_carry_row_count_and_schema(materialized: dg.ExecuteInProcessResult) -> None:
    by_key = {key_of(m): m for m in materialized.get_asset_materialization_events()}
    orders = by_key["sales/orders"].materialization.metadata
    assert orders["dagster/row_count"].value == 5000
    schema = table_schema(orders)
    assert [c.name for c in schema.columns] == [
        "order_id", "ordered_at", "customer_id", "region", "product", "quantity", "unit_price",
    ]
    daily = by_key["sales/daily_sales"].materialization.metadata
    assert daily["dagster/row_count"].value == len(expected_daily_sales())
    assert daily["dagster/table_name"].value == "sales_daily_sales"


def test_second_run_gives_the_same_warehouse(materialized: dg.ExecuteInProcessResult, aggregator_home: Path) -> None:
    tables = ["sales_orders", "sales_daily_sales", "sales_region_leaderboard"]
    first = {t: warehouse_rows(aggregator_home, t) for t in tables}
    materialize_all(load_defs())
    assert {t: warehouse_rows(aggregator_home, t) for t in tables} == first
    with sqlite3.connect(aggregator_home / "warehouse.db") as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not [n for n in names if n.startswith("_stage_")], "staging tables must not be left behind"
