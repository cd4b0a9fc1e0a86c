"""Bulk row writers per dialect: PostgreSQL COPY, SQLite batched executemany, never per-row INSERTs.

Every writer works inside the caller's transaction (a SQLAlchemy Connection), so rows and incremental state
commit together."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from connectors.batches import ColumnType

Quote = Callable[[str], str]
Rows = Sequence[Sequence[Any]]


class Writer(Protocol):
    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int: ...

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> int: ...


def _update_set(columns: Sequence[str], primary_key: Sequence[str], quote: Quote, excluded: str) -> str:
    return ", ".join(f"{quote(c)} = {excluded}.{quote(c)}" for c in columns if c not in primary_key)


class PostgresWriter:
    """COPY through the psycopg 3 connection under SQLAlchemy's, in SQLAlchemy's transaction."""

    def __init__(self, quote: Quote) -> None:
        self.quote = quote

    def _copy(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> None:
        raw = conn.connection.driver_connection
        cols = ", ".join(self.quote(c) for c in columns)
        with raw.cursor() as cur, cur.copy(f"COPY {self.quote(table)} ({cols}) FROM STDIN") as copy:  # type: ignore[union-attr]
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        self._copy(conn, table, columns, rows)
        return len(rows)

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> int:
        # COPY into a temporary staging table, then one set-based upsert. DISTINCT ON keeps the last row per
        # key within the batch (ON CONFLICT cannot touch the same row twice in one statement).
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
        result = conn.exec_driver_sql(
            f"INSERT INTO {q(table)} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {q(stage)} "  # noqa: S608 (identifiers quoted by the dialect)
            f"ORDER BY {keys}, _aggregator_ord DESC ON CONFLICT ({keys}) {action}"
        )
        conn.exec_driver_sql(f"DROP TABLE {q(stage)}")
        return int(result.rowcount)


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
    ) -> int:
        # Upserts run in batch order, so a key repeated within the batch ends with its last row.
        keys = ", ".join(self.quote(c) for c in primary_key)
        updates = _update_set(columns, primary_key, self.quote, "excluded")
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        sql = f"{self._insert_sql(table, columns)} ON CONFLICT ({keys}) {action}"
        conn.exec_driver_sql(sql, [tuple(r) for r in self._prepare(columns, rows)])
        return len(rows)


class GenericWriter:
    """Any other SQLAlchemy dialect: a Core executemany insert; merge is not portable, so not offered."""

    def __init__(self, table_for: Callable[[str, Sequence[str]], sa.Table]) -> None:
        self.table_for = table_for

    def append(self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows) -> int:
        conn.execute(self.table_for(table, columns).insert(), [dict(zip(columns, r)) for r in rows])
        return len(rows)

    def merge(
        self, conn: sa.Connection, table: str, columns: Sequence[str], rows: Rows, primary_key: Sequence[str]
    ) -> int:
        raise NotImplementedError(f"merge is implemented for postgresql and sqlite, not {conn.dialect.name}")
