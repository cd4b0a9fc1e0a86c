"""Bulk row writers per dialect: PostgreSQL COPY, SQLite batched executemany, never per-row INSERTs.

Rows that arrive as an Arrow table (`ArrowRows`, from the columnar file readers) reach PostgreSQL as CSV
that Arrow writes in C++ (`COPY ... (FORMAT csv)`), with no Python object per value; other rows are sent
with psycopg's `write_row`.

Every writer works inside the caller's transaction (a SQLAlchemy Connection), so rows and incremental state
commit together."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from connectors.arrow_rows import ArrowRows
from connectors.batches import ColumnType

Quote = Callable[[str], str]
Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Merged:
    """What an upsert did: rows inserted or updated, and of those the inserted ones (None if unknown)."""

    written: int
    inserted: int | None


class Writer(Protocol):
    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int: ...

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> Merged: ...


def _update_set(columns: Sequence[str], primary_key: Sequence[str], quote: Quote, excluded: str) -> str:
    return ", ".join(f"{quote(c)} = {excluded}.{quote(c)}" for c in columns if c not in primary_key)


_CSV = pacsv.WriteOptions(include_header=False)  # strings quoted, NULL as an unquoted empty field


class PostgresWriter:
    """COPY through the psycopg 3 connection under SQLAlchemy's, in SQLAlchemy's transaction."""

    def __init__(self, quote: Quote, types: Callable[[str], ColumnType] | None = None) -> None:
        self.quote = quote
        self.types = types

    def _as_csv(self, columns: Sequence[str], rows: Rows) -> pa.Buffer | None:
        """The rows as COPY CSV if they are an Arrow table whose text rendering is what `write_row` would
        send; None otherwise. Only a typed value going into a TEXT column renders differently (Arrow writes
        `true` and `2024-01-01 00:00:00.000000` where psycopg writes `t` and `2024-01-01 00:00:00`)."""
        if not isinstance(rows, ArrowRows):
            return None
        if self.types is not None:
            for column, field in zip(columns, rows.table.schema, strict=True):
                if self.types(column) is ColumnType.TEXT and not pa.types.is_string(field.type):
                    return None
        sink = pa.BufferOutputStream()
        pacsv.write_csv(rows.table, sink, _CSV)
        return sink.getvalue()

    def _copy(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> None:
        raw = conn.connection.driver_connection
        cols = ", ".join(self.quote(c) for c in columns)
        text = self._as_csv(columns, rows)
        if text is not None:
            with raw.cursor() as cur, cur.copy(  # type: ignore[union-attr]
                f"COPY {self.quote(table)} ({cols}) FROM STDIN (FORMAT csv)"
            ) as copy:
                copy.write(memoryview(text))
            return
        with raw.cursor() as cur, cur.copy(f"COPY {self.quote(table)} ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        self._copy(conn, table, columns, rows)
        return len(rows)

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> Merged:
        # COPY into a temporary staging table, then one set-based upsert. DISTINCT ON keeps the last row per
        # key within the batch (ON CONFLICT cannot touch the same row twice in one statement). A row the upsert
        # inserted has no xmax; one it updated carries this transaction's: that is how the table's row count
        # follows a merge without counting the table.
        q = self.quote
        stage = f"_merge_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(q(c) for c in columns)
        keys = ", ".join(q(c) for c in primary_key)
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {q(stage)} ON COMMIT DROP AS "  # noqa: S608 (identifiers quoted by the dialect)
                             f"SELECT {cols} FROM {q(table)} WITH NO DATA")
        conn.exec_driver_sql(f"ALTER TABLE {q(stage)} ADD COLUMN _aggregator_ord BIGSERIAL")
        self._copy(conn, stage, columns, rows)
        updates = _update_set(columns, primary_key, q, "EXCLUDED")
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        written, inserted = conn.exec_driver_sql(
            f"WITH upserted AS (INSERT INTO {q(table)} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {q(stage)} "  # noqa: S608 (identifiers quoted by the dialect)
            f"ORDER BY {keys}, _aggregator_ord DESC ON CONFLICT ({keys}) {action} RETURNING (xmax = 0) AS inserted) "
            "SELECT count(*), count(*) FILTER (WHERE inserted) FROM upserted"
        ).one()
        conn.exec_driver_sql(f"DROP TABLE {q(stage)}")
        return Merged(written=int(written), inserted=int(inserted))


def _sqlite_value(value: Any) -> Any:
    # SQLAlchemy's SQLite DateTime/Date store ISO text in this exact shape; matching it keeps reads typed
    # (and avoids sqlite3's deprecated default datetime adapters).
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(" ", "microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class SqliteWriter:
    """One `executemany` per batch (a C loop in sqlite3) inside the load's transaction."""

    def __init__(self, quote: Quote, types: Callable[[str], ColumnType]) -> None:
        self.quote = quote
        self.types = types

    def _prepare(self, columns: Sequence[str], rows: Rows) -> Rows:
        temporal = [i for i, c in enumerate(columns) if self.types(c) in (ColumnType.TIMESTAMP, ColumnType.DATE)]
        if not temporal:
            return rows
        prepared = []
        for row in rows:
            values = list(row)
            for i in temporal:
                values[i] = _sqlite_value(values[i])
            prepared.append(values)
        return prepared

    def _insert_sql(self, table: str, columns: Sequence[str]) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        return f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608 (identifiers quoted by the dialect, values are ?)

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        conn.exec_driver_sql(self._insert_sql(table, columns), [tuple(r) for r in self._prepare(columns, rows)])
        return len(rows)

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> Merged:
        # Upserts run in batch order, so a key repeated within the batch ends with its last row.
        keys = ", ".join(self.quote(c) for c in primary_key)
        updates = _update_set(columns, primary_key, self.quote, "excluded")
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        sql = f"{self._insert_sql(table, columns)} ON CONFLICT ({keys}) {action}"
        values = [tuple(r) for r in self._prepare(columns, rows)]
        inserted = self._new_keys(conn, table, columns, values, primary_key)
        conn.exec_driver_sql(sql, values)
        return Merged(written=len(rows), inserted=inserted)

    def _new_keys(
        self, conn: sa.Connection, table: str, columns: Sequence[str], values: list[tuple[Any, ...]],
        primary_key: Sequence[str],
    ) -> int | None:
        """How many distinct keys of the batch the table does not hold yet (the rows the upsert will insert);
        found through a temporary table of the batch's keys, so the cost follows the batch, not the table.
        None with a NULL key (a unique index lets each NULL in)."""
        positions = [list(columns).index(k) for k in primary_key]
        keys = {tuple(row[i] for i in positions) for row in values}
        if any(v is None for key in keys for v in key):
            return None
        q = self.quote
        stage = f"_merge_keys_{uuid.uuid4().hex[:12]}"
        names = [f"k{i}" for i in range(len(primary_key))]
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {q(stage)} ({', '.join(names)})")
        conn.exec_driver_sql(f"INSERT INTO {q(stage)} VALUES ({', '.join('?' for _ in names)})", list(keys))  # noqa: S608 (identifiers quoted by the dialect, values are ?)
        match = " AND ".join(f"t.{q(k)} = s.{n}" for k, n in zip(primary_key, names, strict=True))
        existing = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM {q(stage)} AS s WHERE EXISTS (SELECT 1 FROM {q(table)} AS t WHERE {match})"  # noqa: S608 (identifiers quoted by the dialect)
        ).scalar_one()
        conn.exec_driver_sql(f"DROP TABLE {q(stage)}")
        return len(keys) - int(existing)


def _mysql_value(value: Any) -> Any:
    # PyMySQL writes an aware datetime's wall time and drops its zone: convert to the naive UTC every
    # dialect stores (DATETIME holds no zone).
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


class MysqlWriter:
    """One `executemany` per batch, which PyMySQL packs into multi-row `INSERT … VALUES (…), (…)` statements
    (each up to the server's max_allowed_packet). On MySQL rows always go into a staging table first
    (aggregator/destinations/staged.py); the upsert into the table is one `INSERT … SELECT` from it."""

    def __init__(self, quote: Quote) -> None:
        self.quote = quote

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        cols = ", ".join(self.quote(c) for c in columns)
        sql = f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({', '.join('%s' for _ in columns)})"  # noqa: S608 (identifiers quoted by the dialect, values are %s)
        conn.exec_driver_sql(sql, [tuple(_mysql_value(v) for v in row) for row in rows])
        return len(rows)

    def publish(
        self, conn: sa.Connection, stage: str, table: str, columns: Sequence[str], primary_key: Sequence[str],
        order: str, segments: Sequence[tuple[int, frozenset[str]]] = (),
    ) -> int:
        """Move the staged rows into `table` in arrival order (`order`, the stage's auto-increment column):
        plain inserts, or with `primary_key` an upsert in which a key's last row wins. `segments` (the order
        value before each run of batches with the same columns, and those columns) upserts each run with its
        own columns only, so a row whose batch lacked a column keeps the table's value, as on PostgreSQL and
        SQLite, instead of the NULL its staged row holds. Returns the driver's row count (for an upsert MySQL
        counts an updated row twice, so callers report staged rows instead)."""
        if len(segments) <= 1:
            return self._publish(conn, stage, table, columns, primary_key, order, None)
        count = 0
        for i, (after, shape) in enumerate(segments):
            until = segments[i + 1][0] if i + 1 < len(segments) else None
            present = [c for c in columns if c in shape]
            count += self._publish(conn, stage, table, present, primary_key, order, (after, until))
        return count

    def _publish(
        self, conn: sa.Connection, stage: str, table: str, columns: Sequence[str], primary_key: Sequence[str],
        order: str, between: tuple[int, int | None] | None,
    ) -> int:
        q = self.quote
        cols = ", ".join(q(c) for c in columns)
        where = ""
        if between is not None:
            where = f" WHERE {q(order)} > {int(between[0])}"
            where += f" AND {q(order)} <= {int(between[1])}" if between[1] is not None else ""
        sql = f"INSERT INTO {q(table)} ({cols}) SELECT {cols} FROM {q(stage)}{where} ORDER BY {q(order)}"  # noqa: S608 (identifiers quoted by the dialect, bounds are ints)
        if primary_key:
            # VALUES(c) is the incoming row's value (MySQL 8.0.20 deprecates it for an alias MariaDB lacks;
            # both take it). With only key columns, a no-op update keeps the existing row.
            updates = [f"{q(c)} = VALUES({q(c)})" for c in columns if c not in primary_key] or \
                [f"{q(table)}.{q(k)} = {q(table)}.{q(k)}" for k in primary_key]
            sql += f" ON DUPLICATE KEY UPDATE {', '.join(updates)}"
        return int(conn.exec_driver_sql(sql).rowcount)


class GenericWriter:
    """Any other SQLAlchemy dialect: a Core executemany insert; merge is not portable, so not offered."""

    def __init__(self, table_for: Callable[[str, Sequence[str]], sa.Table]) -> None:
        self.table_for = table_for

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        conn.execute(self.table_for(table, columns).insert(), [dict(zip(columns, r)) for r in rows])
        return len(rows)

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> Merged:
        raise NotImplementedError(f"merge is implemented for postgresql and sqlite, not {conn.dialect.name}")
