"""A SQL warehouse (any SQLAlchemy URL) as a Dagster resource: loads batches, runs transforms."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from aggregator.destinations.identifiers import check_identifier
from connectors.batches import Batch, ColumnType
from connectors.redact import sanitize_url

WriteMode = Literal["append", "replace"]

SQL_TYPES: dict[ColumnType, sa.types.TypeEngine] = {
    ColumnType.INTEGER: sa.BigInteger(),
    ColumnType.FLOAT: sa.Double(),
    ColumnType.BOOLEAN: sa.Boolean(),
    ColumnType.TEXT: sa.Text(),
    ColumnType.TIMESTAMP: sa.DateTime(),
    ColumnType.DATE: sa.Date(),
}


@dataclass(frozen=True)
class TableInfo:
    """What a table looks like after a load: for asset metadata."""

    name: str
    row_count: int
    columns: tuple[tuple[str, str], ...]  # (name, SQL type as the database reports it)


@dataclass(frozen=True)
class LoadResult:
    rows_written: int
    table: TableInfo


@lru_cache(maxsize=16)
def _engine(url: str) -> sa.Engine:
    # One pooled engine per URL per process: resources are rebuilt per run, pools should not be.
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # A fresh AGGREGATOR_HOME has no directory yet; SQLite creates the file but not its parents.
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


class SqlDestination(dg.ConfigurableResource):
    """A SQL database that pipelines write tables into (SQLite by default, PostgreSQL in production)."""

    url: str = Field(description="SQLAlchemy URL of the warehouse, e.g. sqlite:///warehouse.db or postgresql+psycopg://…")

    @property
    def engine(self) -> sa.Engine:
        return _engine(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def display_url(self) -> str:
        return sanitize_url(self.url)

    def quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(check_identifier(name, "table or column name"))

    def check(self) -> str:
        """Prove the warehouse accepts connections."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return f"{self.display_url}: connected ({self.dialect})"

    def _table(self, name: str, columns: tuple[str, ...], types: dict[str, ColumnType]) -> sa.Table:
        return sa.Table(
            check_identifier(name, "table name"),
            sa.MetaData(),
            *(sa.Column(check_identifier(c, "column name"), SQL_TYPES[types[c]]) for c in columns),
        )

    def load(self, table: str, batches: Iterable[Batch], mode: WriteMode) -> LoadResult:
        """Write `batches` into `table` in one transaction: a failure leaves the table as it was."""
        check_identifier(table, "table name")
        # replace loads into a staging table and swaps it in, so readers never see a half-loaded table
        target = f"_stage_{table}_{uuid.uuid4().hex[:8]}" if mode == "replace" else table
        written = 0
        with self.engine.begin() as conn:
            sa_table: sa.Table | None = None
            for batch in batches:
                if sa_table is None:
                    sa_table = self._table(target, batch.columns, batch.types)
                    sa_table.create(conn, checkfirst=True)
                if batch.rows:
                    conn.execute(sa_table.insert(), [dict(zip(batch.columns, row)) for row in batch.rows])
                    written += len(batch.rows)
            if mode == "replace":
                if sa_table is None:
                    # An empty source replaces the table's contents with nothing, keeping its columns.
                    if sa.inspect(conn).has_table(table):
                        conn.execute(sa.text(f"DELETE FROM {self.quote(table)}"))
                else:
                    self._swap(conn, target, table)
            info = self._describe(conn, table)
        return LoadResult(rows_written=written, table=info)

    def replace_with_query(self, table: str, select_sql: str) -> TableInfo:
        """Materialize `select_sql` as `table`, atomically replacing the previous version."""
        staging = f"_stage_{check_identifier(table, 'table name')}_{uuid.uuid4().hex[:8]}"
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {self.quote(staging)} AS {select_sql}"))
            self._swap(conn, staging, table)
            return self._describe(conn, table)

    def _swap(self, conn: sa.Connection, staging: str, table: str) -> None:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {self.quote(table)}"))
        conn.execute(sa.text(f"ALTER TABLE {self.quote(staging)} RENAME TO {self.quote(table)}"))

    def _describe(self, conn: sa.Connection, table: str) -> TableInfo:
        inspector = sa.inspect(conn)
        if not inspector.has_table(table):
            return TableInfo(name=table, row_count=0, columns=())
        columns = tuple((c["name"], str(c["type"])) for c in inspector.get_columns(table))
        count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {self.quote(table)}")).scalar_one()
        return TableInfo(name=table, row_count=int(count), columns=columns)

    def describe(self, table: str) -> TableInfo:
        """Row count and columns of `table` as it is now."""
        with self.engine.connect() as conn:
            return self._describe(conn, table)
