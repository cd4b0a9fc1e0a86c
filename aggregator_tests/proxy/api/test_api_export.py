"""Exports: streamed CSV/Parquet of an asset's table, through the proxy and in constant memory."""

from __future__ import annotations

import io
import sqlite3
import tracemalloc
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest

from aggregator.proxy.api.export import ROW_GROUP_BYTES, ExportCaps, export_csv, export_parquet
from aggregator.proxy.api.warehouse import Warehouse
from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.proxy.api.conftest import ApiStack

MILLION = 1_000_000


def test_csv_export_through_the_proxy(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c, c.stream("GET", "/api/assets/sales/orders/export") as r:
        assert r.status_code == 200
        assert r.headers["content-disposition"] == 'attachment; filename="sales_orders.csv"'
        text = r.read().decode()
    lines = text.splitlines()
    assert lines[0] == "order_id,region,quantity,unit_price" and len(lines) == 2001


def test_parquet_export_with_limit(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        r = c.get("/api/assets/sales/orders/export", params={"format": "parquet", "limit": 10})
    assert r.status_code == 200, r.text
    table = pq.read_table(io.BytesIO(r.content))
    assert table.num_rows == 10 and table.column_names == ["order_id", "region", "quantity", "unit_price"]


def test_export_of_unknown_or_unmaterialized_asset_is_404(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        assert c.get("/api/assets/sales/nothing/export").status_code == 404
        r = c.get("/api/assets/sales/daily_sales/export")  # declared, never materialized here
    assert r.status_code == 404 and "materialize" in r.json()["detail"]


@pytest.fixture(scope="module")
def million_rows(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    path = tmp_path_factory.mktemp("big") / "w.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (id INTEGER, name TEXT, amount REAL)")
        conn.execute("""INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
                        SELECT i, 'customer-' || i, i * 0.5 FROM n""", (MILLION,))
    return Warehouse(f"sqlite:///{path}")


@pytest.mark.parametrize("exporter", [export_csv, export_parquet], ids=["csv", "parquet"])
def test_million_row_export_in_constant_memory(million_rows: Warehouse, exporter: object) -> None:
    """1,000,000 rows leave in chunks of at most 10,000 rows (Parquet: row groups of 65,536); the peak of Python
    allocations while exporting stays far below the size of the output (what holding the table would cost)."""
    tracemalloc.start()
    try:
        chunks, total, largest = 0, 0, 0
        for block in exporter(million_rows, "big", None, ExportCaps()):  # type: ignore[operator]
            chunks += 1
            total += len(block)
            largest = max(largest, len(block))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunks >= MILLION // 10_000  # one block per fetched chunk (plus header/footer)
    # No block holds more than a small slice of the export: a fetched chunk, or a Parquet row group (65,536 rows).
    assert largest < total / (50 if exporter is export_csv else 10)
    # Parquet holds one row group's encoded bytes at most (test_api_query_parquet.py measures peak RSS growth).
    bound = total / 4 if exporter is export_csv else ROW_GROUP_BYTES
    assert peak < bound, f"peak {peak} bytes for {total} bytes exported"


def test_postgres_export_streams_with_a_server_side_cursor(pg_db: PgDatabase, tmp_path: Path) -> None:
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id, 'n' || g AS name FROM generate_series(1, 25000) g")
    blocks = list(export_csv(Warehouse(pg_db.sqlalchemy_url), "t", None, ExportCaps()))
    assert len(blocks) == 3
    assert b"".join(blocks).decode().splitlines()[:2] == ["id,name", "1,n1"]
    out = tmp_path / "t.parquet"
    out.write_bytes(b"".join(export_parquet(Warehouse(pg_db.sqlalchemy_url), "t", 100, ExportCaps())))
    assert pq.read_table(out).num_rows == 100


def test_export_and_query_are_audited(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        assert c.get("/api/assets/sales/orders/export", params={"limit": 1}).status_code == 200
        assert c.post("/api/query", json={"sql": "SELECT 1 AS one FROM sales_orders LIMIT 1"}).status_code == 200
    events = {r.event for r in api_stack.proxy.audit.query(AuditQuery(username="viewer", limit=500))}
    assert {"api_export", "api_query"} <= events
