"""Any SQLAlchemy-reachable database as a source: tables or queries, streamed with server-side cursors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator
from typing import Any

import dagster as dg
import psycopg
import sqlalchemy as sa
from pydantic import Field

from connectors.batches import Batch, StreamInfo
from connectors.egress import check_sql_url
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.nested import created_columns
from connectors.records import TypeHints, TypeTracker
from connectors.redact import sanitize_url
from connectors.sql.config import SqlStream
from connectors.sql.engines import engine_for
from connectors.sql.reflect import reflect_columns
from connectors.sql.types import portable_type
from connectors.state_values import decode_value, encode_value, later
from connectors.strict import reject_unknown

# Bind types for cursor/window values, so e.g. SQLite compares timestamps in the format it stores them.
_BIND_TYPES: dict[type, sa.types.TypeEngine[Any]] = {
    dt.datetime: sa.DateTime(), dt.date: sa.Date(), int: sa.BigInteger(), float: sa.Double(), str: sa.Text(),
}


def _execute_chunks(
    conn: sa.Connection, statement: sa.Executable, size: int
) -> tuple[tuple[str, ...], Iterator[list[Any]]]:
    """Column names and an iterator of row lists of at most `size` rows, streamed from the server.

    psycopg already returns plain tuples of Python values, so for it the statement runs on a named
    (server-side) psycopg cursor under SQLAlchemy's connection, skipping SQLAlchemy's row layer, which would
    otherwise cost as much as the COPY on the other end. Other drivers stream through `yield_per`, whose
    result processing e.g. turns SQLite's stored text back into datetimes."""
    if conn.dialect.driver == "psycopg":
        compiled = statement.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
        raw = conn.connection.driver_connection
        cursor = raw.cursor(name=f"aggregator_{id(compiled):x}")  # type: ignore[union-attr]
        cursor.itersize = size
        cursor.execute(str(compiled), compiled.params)
        columns = tuple(d.name for d in cursor.description or ())

        def fetch() -> Iterator[list[Any]]:
            with cursor:
                while rows := cursor.fetchmany(size):
                    yield rows

        return columns, fetch()
    result = conn.execution_options(yield_per=size).execute(statement)
    return tuple(result.keys()), ([tuple(r) for r in part] for part in result.partitions(size))


class SqlResource(dg.ConfigurableResource):
    """A database read through SQLAlchemy (PostgreSQL, SQLite, or any dialect installed)."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db; pass secrets as {env: NAME}.")

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    @property
    def engine(self) -> sa.Engine:
        # Never the platform's databases or its warehouse, SQLite only under the data roots.
        check_sql_url(self.url, "url", source=True)
        return engine_for(self.url, egress="source")

    @property
    def display_url(self) -> str:
        return sanitize_url(self.url)

    def check(self) -> str:
        """Connect and run SELECT 1; returns the dialect and server version."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                version = ".".join(str(p) for p in (conn.dialect.server_version_info or ()))
        except sa.exc.DBAPIError as exc:
            raise SourceReadError(f"cannot connect to {self.display_url}: {exc.orig}") from exc
        return f"{self.display_url}: connected ({self.engine.dialect.name} {version})".rstrip()

    def discover(self, stream: SqlStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        """Columns and portable types of `stream` (its table's declared types, or its query's first chunk),
        or of every table and view in the default schema if None; the spec's declared types (`hints`) win,
        as they do in a load."""
        if stream is not None:
            name = stream.table or "query"
            if stream.table is not None:
                with self.engine.connect() as conn:
                    _, declared = self._statement(conn, stream, None, None)
                overrides = hints.columns if hints is not None else {}
                columns = {c: overrides.get(c, t) for c, t in declared.items()}
                return [StreamInfo(name=name, columns=columns, detail=self.display_url)]
            batch = next(iter(self.read(stream.model_copy(update={"chunk_size": 1000}), hints=hints)), None)
            columns = created_columns(batch) if batch is not None else {}
            return [StreamInfo(name=name, columns=columns, detail=self.display_url)]
        with self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            names = [(n, "table") for n in inspector.get_table_names()]
            names += [(n, "view") for n in inspector.get_view_names()]
            return [
                StreamInfo(
                    name=name,
                    columns={c["name"]: portable_type(c["type"]) for c in inspector.get_columns(name)},
                    detail=kind,
                )
                for name, kind in sorted(names)
            ]

    def read(
        self,
        stream: SqlStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Generator[Batch, None, None]:
        """Stream the rows in batches of `chunk_size`. With `cursor_column`, only rows past `state["cursor"]`
        are read (a bound parameter, evaluated by the database); the last batch carries the new cursor."""
        if window is not None and stream.window_column is None:
            raise ConnectorConfigError("a windowed (partitioned) load needs `window_column` on the sql stream")
        cursor = decode_value((state or {}).get("cursor"))
        where = self.display_url + (f" table {stream.table}" if stream.table else " query")
        try:
            with self.engine.connect() as conn:
                statement, declared = self._statement(conn, stream, cursor, window)
                # Server-side cursors: memory holds one chunk at a time, whatever the table's size.
                columns, chunks = _execute_chunks(conn, statement, stream.chunk_size)
                tracker = TypeTracker(declared, hints)
                position = columns.index(stream.cursor_column) if stream.cursor_column in columns else None
                if stream.cursor_column and position is None:
                    raise ConnectorConfigError(
                        f"{where}: cursor_column {stream.cursor_column!r} is not among the columns read: {list(columns)}"
                    )
                held: Batch | None = None
                # Only rows past the cursor are read, so the new cursor is the largest value read. (Comparing
                # with the old one could mix types: SQLite returns text from a raw query.)
                newest = None
                for rows in chunks:
                    if held is not None:
                        yield held
                    if position is not None:
                        newest = later(newest, max((r[position] for r in rows if r[position] is not None), default=None))
                    held = tracker.from_tuples(columns, rows, origin=where)
                if held is not None:
                    final = {"cursor": encode_value(newest)} if stream.cursor_column else None
                    yield held.with_state(final)
        except (sa.exc.DBAPIError, psycopg.Error) as exc:
            raise SourceReadError(f"reading {where} failed: {getattr(exc, 'orig', exc)}") from exc

    def _statement(
        self,
        conn: sa.Connection,
        stream: SqlStream,
        cursor: Any,
        window: tuple[dt.datetime, dt.datetime] | None,
    ) -> tuple[sa.Select[Any] | sa.TextClause, dict[str, Any]]:
        """The SELECT with incremental and window predicates as bound parameters, and declared column types."""
        if stream.table is not None:
            schema, _, name = stream.table.rpartition(".")
            # Columns only (one catalog query): full reflection of keys and indexes costs more than an
            # incremental sync that finds nothing new.
            reflected = reflect_columns(conn, name, schema or None)
            if reflected is None:
                raise SourceReadError(f"{self.display_url}: no table or view {stream.table!r}")
            table = sa.table(name, *(sa.column(n, t) for n, t in reflected), schema=schema or None)
            if stream.columns:
                unknown = [c for c in stream.columns if c not in table.c]
                if unknown:
                    raise ConnectorConfigError(
                        f"table {stream.table} has no column(s) {', '.join(unknown)}; it has {', '.join(table.c.keys())}"
                    )
            selected = [table.c[c] for c in stream.columns] if stream.columns else list(table.c)
            query = sa.select(*selected)
            for column, op, value in self._predicates(stream, cursor, window):
                if column not in table.c:
                    raise ConnectorConfigError(f"table {stream.table} has no column {column!r}")
                query = query.where(op(table.c[column], sa.bindparam(None, value, type_=table.c[column].type)))
            return query, {c.name: portable_type(c.type) for c in selected}
        text = (stream.query or "").strip().rstrip(";")
        predicates = self._predicates(stream, cursor, window)
        if not predicates:
            return sa.text(text), {}
        quote = conn.dialect.identifier_preparer.quote
        clauses, binds = [], []
        for index, (column, op, value) in enumerate(predicates):
            sql_op = {"gt": ">", "ge": ">=", "lt": "<"}[op.__name__]
            clauses.append(f"{quote(column)} {sql_op} :p{index}")
            binds.append(sa.bindparam(f"p{index}", value, type_=_BIND_TYPES.get(type(value))))
        wrapped = f"SELECT * FROM ({text}) AS _aggregator_src WHERE {' AND '.join(clauses)}"  # noqa: S608 (the stream's own query; predicate columns quoted, values bound)
        return sa.text(wrapped).bindparams(*binds), {}

    @staticmethod
    def _predicates(
        stream: SqlStream, cursor: Any, window: tuple[dt.datetime, dt.datetime] | None
    ) -> list[tuple[str, Any, Any]]:
        import operator

        predicates: list[tuple[str, Any, Any]] = []
        if stream.cursor_column and cursor is not None:
            predicates.append((stream.cursor_column, operator.gt, cursor))
        if window is not None and stream.window_column:
            predicates.append((stream.window_column, operator.ge, window[0]))
            predicates.append((stream.window_column, operator.lt, window[1]))
        return predicates


class WarehouseReader(SqlResource):
    """The platform's own warehouse read as a source by the operator's CLI (`connections discover warehouse`):
    the platform-database rule still holds, the rule that keeps sources out of the warehouse does not. Specs
    cannot name this class: connection types map to `SqlResource`."""

    @property
    def engine(self) -> sa.Engine:
        check_sql_url(self.url, "url")
        return engine_for(self.url, egress="connection")
