"""The row count a load reports (`dagster/row_count`) is derived from the load, not counted, and stays exact
across every write mode, schema change, transform rebuild and concurrent commit, on both dialects."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.batches import ColumnType as T


def _count(dest: SqlDestination, table: str) -> int:
    with dest.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {dest.quote(table)}")).scalar_one())


def _batch(keys: list[int], extra: bool) -> Batch:
    types = {"id": T.INTEGER, "v": T.TEXT, **({"note": T.TEXT} if extra else {})}
    rows = [(k, f"v{k}", *(["n"] if extra else [])) for k in keys]
    return Batch(columns=tuple(types), types=types, rows=rows)


FAMILIES: dict[str, list[WriteMode]] = {"appended": ["append", "append", "replace"], "merged": ["merge", "merge", "replace"], "only_appended": ["append"]}


def test_generated_load_sequences_report_the_exact_count(dest: SqlDestination) -> None:
    """Random sequences of loads per table (keys repeated across and within batches, empty loads, an added
    column) and transform rebuilds: after each, the reported count equals COUNT(*)."""
    rng = random.Random(12)
    for table, modes in FAMILIES.items():
        for step in range(14):
            mode = rng.choice(modes)
            keys = [[rng.randint(0, 60) for _ in range(rng.randint(0, 25))] for _ in range(rng.randint(0, 3))]
            if table == "merged" and mode == "replace":  # later merges need unique keys in the table
                keys = [sorted({k for batch in keys for k in batch})]
            batches = [_batch(k, extra=step > 8) for k in keys]
            result = dest.load(table, batches, mode, primary_key=("id",) if mode == "merge" else ())
            expected = _count(dest, table) if result.table.columns else 0
            assert result.table.row_count == expected, (table, step, mode)
            if rng.random() < 0.15 and result.table.columns and table != "merged":
                dest.replace_with_query(table, f"SELECT * FROM {dest.quote(table)} WHERE id < 30")


def test_a_load_with_nothing_new_does_not_count_the_table(dest: SqlDestination) -> None:
    """The re-sync case: no COUNT(*) of the loaded table once the count is known."""
    if not dest.rules.counting:
        pytest.skip("MySQL loads count the table (COUNT(*)) after each load: counts are kept on PostgreSQL and SQLite")
    dest.load("t", [_batch(list(range(100)), extra=False)], "append")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        statements.append(statement)

    sa.event.listen(dest.engine, "before_cursor_execute", record)
    try:
        result = dest.load("t", [], "append")
        merged = dest.load("t", [_batch([1, 2, 500], extra=False)], "merge", primary_key=("id",))
    finally:
        sa.event.remove(dest.engine, "before_cursor_execute", record)
    assert result.table.row_count == 100 and merged.table.row_count == 101
    assert not [s for s in statements if "COUNT(*) FROM" in s.upper() and "_MERGE_KEYS_" not in s.upper()]


def test_a_table_counted_before_counts_were_kept_is_counted_once(dest: SqlDestination) -> None:
    """A table loaded by an older version (no stored count) or created by hand is counted by its first load."""
    with dest.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id BIGINT, v TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'x'), (2, 'y')")
    assert dest.load("t", [_batch([7], extra=False)], "append").table.row_count == 3
    assert dest.load("t", [_batch([8], extra=False)], "append").table.row_count == 4


def test_postgres_reflection_matches_the_inspector(pg_db: Any) -> None:
    """The one-query catalog reflection gives the same columns and types as SQLAlchemy's inspector, and
    defers to it for domain and enum columns."""
    from connectors.sql.reflect import _postgres

    dest = SqlDestination(url=pg_db.sqlalchemy_url)
    with dest.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        conn.exec_driver_sql(
            'CREATE TABLE "Mixed Case" (id BIGINT PRIMARY KEY, v VARCHAR(255), n NUMERIC(10, 2), f DOUBLE PRECISION, '
            "b BOOLEAN, ts TIMESTAMP, tz TIMESTAMP(3) WITH TIME ZONE, d DATE, t TEXT, j JSONB, i INTEGER)"
        )
        conn.exec_driver_sql("ALTER TABLE \"Mixed Case\" DROP COLUMN i")
        conn.exec_driver_sql("CREATE TABLE with_enum (id BIGINT, m mood)")
        fast = _postgres(conn, "Mixed Case", None)
        slow = [(c["name"], c["type"]) for c in sa.inspect(conn).get_columns("Mixed Case")]
        assert fast and [(n, str(t)) for n, t in fast] == [(n, str(t)) for n, t in slow]
        assert _postgres(conn, "with_enum", None) is False
        assert _postgres(conn, "absent", None) is None
        conn.exec_driver_sql("CREATE SCHEMA other")
        conn.exec_driver_sql("CREATE TABLE other.elsewhere (id BIGINT)")
        assert [n for n, _ in _postgres(conn, "elsewhere", "other") or []] == ["id"]
        assert _postgres(conn, "elsewhere", None) is None
