"""`POST /api/query`: one SELECT over the caller's tables; each refusal class, the timeout and the row limit,
through the proxy (SQLite warehouse) and against PostgreSQL (same guard, same read-only runner)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from aggregator.proxy.api.query_guard import QueryRefused, check_query
from aggregator.proxy.api.warehouse import QueryTimeout, Warehouse
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.proxy.api.conftest import ApiStack

# (class of refusal, SQL, status, words the detail must contain)
REFUSED = [
    ("write", "DELETE FROM sales_orders", 400, "only SELECT"),
    ("write", "UPDATE sales_orders SET region = 'x'", 400, "only SELECT"),
    ("write", "INSERT INTO sales_orders (order_id) VALUES (1)", 400, "only SELECT"),
    ("write", "DROP TABLE sales_orders", 400, "only SELECT"),
    ("write", "CREATE TABLE x AS SELECT * FROM sales_orders", 400, "only SELECT"),
    ("write", "SELECT * INTO copy_of_orders FROM sales_orders", 400, "INTO"),
    ("write", "WITH d AS (DELETE FROM sales_orders RETURNING *) SELECT * FROM d", 400, "not allowed"),
    ("lock", "SELECT * FROM sales_orders FOR UPDATE", 400, "LOCK"),
    ("multiple statements", "SELECT 1 FROM sales_orders; SELECT 2 FROM sales_orders", 400, "exactly one"),
    ("multiple statements", "SELECT 1 FROM sales_orders; DELETE FROM sales_orders", 400, "exactly one"),
    ("settings", "PRAGMA writable_schema = 1", 400, "only SELECT"),
    ("file function", "SELECT pg_read_file('/etc/passwd')", 400, "pg_read_file"),
    ("file function", "SELECT lo_import('/etc/passwd')", 400, "lo_import"),
    ("file function", "SELECT load_extension('/tmp/evil.so')", 400, "load_extension"),
    ("file function", "SELECT * FROM read_csv('/etc/passwd')", 400, "FROM is not allowed"),
    ("table outside scope", "SELECT * FROM secrets", 403, "secrets"),
    ("table outside scope", "SELECT * FROM sales_orders JOIN secrets ON 1 = 1", 403, "secrets"),
    ("table outside scope", "SELECT * FROM main.sales_orders", 403, "schema-qualified"),
    ("table outside scope", "SELECT * FROM sqlite_master", 403, "sqlite_master"),
    ("table outside scope", "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets", 403, "secrets"),
    ("table outside scope", "SELECT (SELECT token FROM secrets) FROM sales_orders", 403, "secrets"),
    ("does not parse", "SELEC * FROM", 400, ""),
]


@pytest.mark.parametrize(("kind", "sql", "status", "words"), REFUSED, ids=[f"{k}:{s[:40]}" for k, s, _, _ in REFUSED])
def test_refused_through_the_proxy(api_stack: ApiStack, kind: str, sql: str, status: int, words: str) -> None:
    with api_stack.client("viewer") as c:
        r = c.post("/api/query", json={"sql": sql})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.json()
    assert sqlite3.connect(api_stack.warehouse).execute("SELECT COUNT(*) FROM sales_orders").fetchone() == (2000,)


def test_scoped_viewer_cannot_read_another_pipelines_table(api_stack: ApiStack) -> None:
    with api_stack.client("shop_viewer") as c:
        assert c.post("/api/query", json={"sql": "SELECT * FROM shop_customers"}).status_code == 200
        r = c.post("/api/query", json={"sql": "SELECT * FROM sales_orders"})
    assert r.status_code == 403 and "sales_orders" in r.json()["missing_permission"]


def test_json_csv_and_row_limit(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        r = c.post("/api/query", json={"sql": "SELECT region, COUNT(*) AS n FROM sales_orders GROUP BY region "
                                               "ORDER BY region"})
        assert r.status_code == 200, r.text
        assert r.json()["columns"] == ["region", "n"]
        assert r.json()["rows"] == [["east", 500], ["north", 500], ["south", 500], ["west", 500]]
        r = c.post("/api/query", json={"sql": "SELECT order_id FROM sales_orders ORDER BY order_id", "row_limit": 3})
        assert r.json()["rows"] == [[1], [2], [3]] and r.json()["truncated"] is True
        r = c.post("/api/query", json={"sql": "SELECT order_id, region FROM sales_orders ORDER BY order_id",
                                       "row_limit": 2, "format": "csv"})
        assert r.headers["content-type"].startswith("text/csv") and r.headers["x-truncated"] == "true"
        assert r.text == "order_id,region\r\n1,south\r\n2,east\r\n"


def test_long_query_is_cut_off(api_stack: ApiStack) -> None:
    """A query running past the statement timeout is cancelled (408), not left running."""
    api = api_stack.proxy.app.api
    old = api.state.limits
    api.state.limits = old.model_copy(update={"query_timeout_s": 0.5})
    try:
        slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT COUNT(*) FROM n JOIN sales_orders ON 1 = 1")
        with api_stack.client("viewer") as c:
            r = c.post("/api/query", json={"sql": slow})
    finally:
        api.state.limits = old
    assert r.status_code == 408 and "cancelled" in r.json()["detail"], r.text


def test_sqlite_connection_is_read_only_even_past_the_guard(tmp_path: Path) -> None:
    """Defence in depth: the runner itself cannot write, whatever SQL reaches it."""
    path = tmp_path / "w.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|attempt to write"), \
            Warehouse(f"sqlite:///{path}").readonly(5) as cur:
        cur.execute("INSERT INTO t VALUES (1)")


@pytest.fixture
def pg_warehouse(pg_db: PgDatabase) -> Warehouse:
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE sales_orders AS SELECT g AS order_id FROM generate_series(1, 1000) g")
        conn.execute("CREATE TABLE secrets (token text)")
    return Warehouse(pg_db.sqlalchemy_url)


@pytest.mark.parametrize(("kind", "sql", "status", "words"),
                         [c for c in REFUSED if "PRAGMA" not in c[1] and "main." not in c[1]
                          and "sqlite_master" not in c[1]])
def test_refused_on_postgres(pg_warehouse: Warehouse, kind: str, sql: str, status: int, words: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query(sql, pg_warehouse.dialect, {"sales_orders"})
    assert refused.value.status == status


def test_postgres_read_only_transaction_and_timeout(pg_warehouse: Warehouse) -> None:
    sql = check_query("SELECT COUNT(*) FROM sales_orders", "postgres", {"sales_orders"})
    with pg_warehouse.readonly(5) as cur:
        cur.execute(sql)
        assert cur.fetchmany(10) == [(1000,)]
    # Defence in depth: the transaction is READ ONLY, and the server-side cursor accepts only a query.
    with pg_warehouse.readonly(5) as cur:
        cur.execute("SELECT current_setting('transaction_read_only')")
        assert cur.fetchmany(1) == [("on",)]
    with pytest.raises(psycopg.errors.SyntaxError), pg_warehouse.readonly(5) as cur:
        cur.execute("DELETE FROM sales_orders")
    with pytest.raises(QueryTimeout), pg_warehouse.readonly(0.2) as cur:
        cur.execute("SELECT COUNT(*) FROM sales_orders a, sales_orders b, sales_orders c")
        cur.fetchmany(1)


def test_a_plain_postgresql_url_reads_through_psycopg_3(pg_warehouse: Warehouse) -> None:
    """Regression: `postgresql://` gave the API psycopg2 (installed with dagster-postgres) while loads use
    psycopg 3, and the watchdog's `cancel_safe` exists only in psycopg 3. One driver for the warehouse now."""
    import sqlalchemy as sa

    plain = sa.engine.make_url(pg_warehouse.url.render_as_string(hide_password=False)).set(drivername="postgresql")
    warehouse = Warehouse(plain.render_as_string(hide_password=False))
    with warehouse.readonly(5) as cur:
        assert type(cur).__module__.split(".")[0] == "psycopg"  # not psycopg2
        cur.execute(check_query("SELECT COUNT(*) FROM sales_orders", "postgres", {"sales_orders"}))
        assert cur.fetchmany(1) == [(1000,)]
