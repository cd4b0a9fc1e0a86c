"""`POST /api/query` with `format: parquet`: a query result streamed as Parquet, exact, in bounded memory."""

from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aggregator.proxy.api.query_stream import encode_parquet, open_query
from aggregator.proxy.api.warehouse import Warehouse
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.api.conftest import ApiStack

REPO = Path(__file__).resolve().parents[3]
ROW_BYTES = 1 << 20  # the default AGGREGATOR_API_MAX_ROW_BYTES: 64 rows per fetched chunk (501 rows: 8 chunks)


def _parquet(warehouse: Warehouse, sql: str, row_limit: int = 100_000) -> pq.ParquetFile:
    query = open_query(warehouse, sql, 60, ROW_BYTES)
    try:
        data = b"".join(encode_parquet(query, row_limit, 1 << 30))
    finally:
        query.close()
    return pq.ParquetFile(io.BytesIO(data))


def test_result_of_many_chunks_round_trips_with_its_types(pg_db: PgDatabase) -> None:
    """Ints, decimals, timestamps, text and NULLs over more rows than one fetched chunk come back exactly,
    in several row groups; a decimal larger than any of the first chunk's still fits (precision widened)."""
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("""CREATE TABLE t AS SELECT g AS id, (g * 1.25)::numeric(14, 2) AS amount,
                        timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' AS at,
                        CASE WHEN g % 3 = 0 THEN NULL ELSE 'row ' || g END AS label
                        FROM generate_series(1, 500) g""")
        conn.execute("INSERT INTO t VALUES (501, 123456789012.34, NULL, 'last')")
    file = _parquet(Warehouse(pg_db.sqlalchemy_url), "SELECT * FROM t ORDER BY id")
    assert file.metadata.metadata[b"aggregator.truncated"] == b"false"
    table = file.read()
    assert pa.types.is_integer(table.schema.field("id").type)
    assert pa.types.is_decimal(table.schema.field("amount").type)
    assert pa.types.is_timestamp(table.schema.field("at").type)
    rows = table.to_pylist()
    assert len(rows) == 501
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for g, row in enumerate(rows[:500], start=1):
        assert row == {"id": g, "amount": Decimal(g) * Decimal("1.25"), "at": start + dt.timedelta(seconds=g),
                       "label": None if g % 3 == 0 else f"row {g}"}
    assert rows[500] == {"id": 501, "amount": Decimal("123456789012.34"), "at": None, "label": "last"}


def test_row_limit_is_in_the_footer(pg_db: PgDatabase) -> None:
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 300) g")
    file = _parquet(Warehouse(pg_db.sqlalchemy_url), "SELECT id FROM t ORDER BY id", row_limit=200)
    assert file.metadata.metadata[b"aggregator.truncated"] == b"true"
    assert file.read().column("id").to_pylist() == list(range(1, 201))


def test_a_later_value_that_does_not_fit_ends_the_file_unreadable(tmp_path: Path) -> None:
    """A text in a column whose first chunk was numbers: never a valid file with the value changed or lost."""
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)] + [("text",)])
    query = open_query(Warehouse(f"sqlite:///{path}"), "SELECT v FROM t", 60, ROW_BYTES)
    parts: list[bytes] = []
    try:
        with pytest.raises(Exception, match="do not fit the Parquet column types.*CAST"):
            parts.extend(encode_parquet(query, 1000, 1 << 30))  # keeps what came before the error
    finally:
        query.close()
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(b"".join(parts)))


def test_parquet_through_the_proxy_under_the_query_guard(api_stack: ApiStack) -> None:
    sql = "SELECT order_id, region, unit_price FROM sales_orders ORDER BY order_id"
    with api_stack.client("viewer") as c:
        r = c.post("/api/query", json={"sql": sql, "format": "parquet", "row_limit": 1500})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    assert r.headers["content-disposition"] == 'attachment; filename="query.parquet"'
    file = pq.ParquetFile(io.BytesIO(r.content))
    table = file.read()
    assert table.num_rows == 1500 and table.column("order_id").to_pylist() == list(range(1, 1501))
    assert file.metadata.metadata[b"aggregator.truncated"] == b"true"
    with api_stack.client("shop_viewer") as c:
        refused = c.post("/api/query", json={"sql": sql, "format": "parquet"})
        writes = c.post("/api/query", json={"sql": "DELETE FROM shop_customers", "format": "parquet"})
    assert refused.status_code == 403 and "sales_orders" in refused.json()["missing_permission"]
    assert writes.status_code == 400


MEASURE = """
import json, sys
from aggregator.proxy.api.query_stream import encode_parquet, open_query
from aggregator.proxy.api.warehouse import Warehouse
query = open_query(Warehouse(sys.argv[1]), "SELECT * FROM big", 600, 1 << 20)
size = 0
try:
    for part in encode_parquet(query, 1_000_000, 1 << 40):
        size += len(part)
finally:
    query.close()
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"bytes": size, "peak_kib": peak}))
"""


def _peak_kib(url: str) -> tuple[int, int]:
    # The system allocator, one arena (test_conformance.py: Arrow's jemalloc pool keeps dirty pages around).
    out = subprocess.run([sys.executable, "-c", MEASURE, url], cwd=REPO, capture_output=True, text=True,
                         env=platform_env(MALLOC_ARENA_MAX="1", ARROW_DEFAULT_MEMORY_POOL="system"),
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return int(answer["bytes"]), int(answer["peak_kib"])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_result(tmp_path: Path) -> None:
    """10x the rows costs no more than a little peak RSS. Held whole, 700,000 of these rows take about
    140 MiB in Python; the allowance is 10 MiB. Both sizes fill at least one row group (65,536 rows). Each size is measured twice and the lower peak kept (a peak
    only ever errs upwards)."""
    peaks, sizes = {}, {}
    for rows in (70_000, 700_000):
        path = tmp_path / f"{rows}.db"
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE big (id INTEGER, name TEXT, amount REAL)")
            conn.execute("""INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n
                            WHERE i < ?) SELECT i, 'customer-' || i || '-with-some-longer-text', i * 0.5 FROM n""",
                         (rows,))
        reads = [_peak_kib(f"sqlite:///{path}") for _ in range(2)]
        sizes[rows] = reads[0][0]
        peaks[rows] = min(peak for _, peak in reads)
    assert sizes[700_000] > 5 * sizes[70_000]
    growth_mib = (peaks[700_000] - peaks[70_000]) / 1024
    print(f"peak RSS KiB by rows: {peaks}")
    assert growth_mib < 10, f"peak RSS grew {growth_mib:.1f} MiB from 70,000 to 700,000 rows ({peaks})"
