"""A SQL warehouse (any SQLAlchemy URL) as a Dagster resource: loads batches, runs transforms."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg
import psycopg
import sqlalchemy as sa
from pydantic import Field

from aggregator.destinations import row_counts, staged
from aggregator.destinations import state as state_store
from aggregator.destinations.bookkeeping import ensure_tables
from aggregator.destinations.child_tables import ChildTables
from aggregator.destinations.dialects import SQL_TYPES, DialectRules, rules_for
from aggregator.destinations.errors import DestinationError, SchemaChangeError
from aggregator.destinations.identifiers import check_identifier, scratch_name
from aggregator.destinations.results import LoadResult, ReadFrom, TableInfo
from aggregator.destinations.schema import (
    MISSING_COLUMNS,
    SCHEMA_POLICIES,
    WRITE_MODES,
    MissingColumns,
    SchemaPolicy,
    WriteMode,
)
from aggregator.destinations.table_load import TableLoad
from aggregator.destinations.values import out_of_range
from aggregator.destinations.writers import GenericWriter, PostgresWriter, SqliteWriter, Writer
from connectors.batches import Batch, ColumnType
from connectors.egress import check_sql_url
from connectors.redact import sanitize_url
from connectors.sql.engines import engine_for
from connectors.sql.reflect import reflect_columns

# Re-exported: callers import the load's results and the portable type map from here.
__all__ = ["SQL_TYPES", "LoadResult", "ReadFrom", "SqlDestination", "TableInfo"]


class SqlDestination(dg.ConfigurableResource):
    """A SQL database that pipelines write tables into (SQLite by default, PostgreSQL in production)."""

    url: str = Field(description="SQLAlchemy URL of the warehouse, e.g. sqlite:///warehouse.db or postgresql+psycopg://…")
    declared_in_spec: bool = Field(
        default=False, description="A connection from a spec (not the platform's own warehouse): connectors' egress rules "
        "apply, so it can never write into a platform database or a SQLite file outside the data roots.")

    @property
    def engine(self) -> sa.Engine:
        if self.declared_in_spec:
            check_sql_url(self.url, "url")
            return engine_for(self.url, writer=True, egress="connection")
        return engine_for(self.url, writer=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def rules(self) -> DialectRules:
        return rules_for(self.dialect)

    @property
    def display_url(self) -> str:
        return sanitize_url(self.url)

    def quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(check_identifier(name, "table or column name"))

    def check(self) -> str:
        """Prove the warehouse accepts connections."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            raise DestinationError(f"cannot connect to {self.display_url}: {exc.orig}") from exc
        return f"{self.display_url}: connected ({self.dialect})"

    # -- loads ---------------------------------------------------------------------------------------------

    def load(
        self,
        table: str,
        batches: Iterable[Batch] | ReadFrom,
        mode: WriteMode,
        *,
        primary_key: Sequence[str] = (),
        schema_policy: SchemaPolicy = "evolve",
        state_key: str | None = None,
        missing_columns: MissingColumns = "keep",
    ) -> LoadResult:
        """Write `batches` into `table` in one transaction: a failure (or a killed process) leaves the table
        and the incremental state exactly as they were.

        append adds rows; replace builds a staging table and swaps it in, so readers never see a
        half-loaded table; merge upserts on `primary_key`, the last row per key winning. With `state_key`,
        the `state` of the last batch that carries one is committed in the same transaction as the rows.

        `batches` may be a function of the committed state (`ReadFrom`): it is called inside the transaction,
        after the stream's lock is taken (`state.lock`), so two overlapping loads of one stream run one after
        the other and the second reads from where the first stopped. An iterable read from a state fetched
        earlier cannot have that guarantee.

        A column of the table that no batch sends (dropped or renamed at the source) is reported in
        `missing_columns` and `schema_changes`; `missing_columns` decides the rest: `keep` (append and merge
        leave it NULL in new rows; replace carries each row's old value over by `primary_key`, and without one
        fails rather than erase the column), `fail` (nothing is committed), or `accept` (append and merge as
        `keep`; replace drops the column)."""
        check_identifier(table, "table name")
        if mode not in WRITE_MODES:
            raise ValueError(f"unknown write mode {mode!r}; allowed: {', '.join(WRITE_MODES)}")
        if schema_policy not in SCHEMA_POLICIES:
            raise ValueError(f"unknown schema_policy {schema_policy!r}; allowed: {', '.join(SCHEMA_POLICIES)}")
        if missing_columns not in MISSING_COLUMNS:
            raise ValueError(f"unknown missing_columns {missing_columns!r}; allowed: {', '.join(MISSING_COLUMNS)}")
        keys = tuple(check_identifier(k, "primary key column") for k in primary_key)
        if mode == "merge" and not keys:
            raise ValueError(f"table {table}: write mode 'merge' needs a primary_key to upsert on")
        if state_key is not None and not state_key.strip():
            raise ValueError("state_key must be a non-empty string")
        opened: list[Iterable[Batch]] = [] if callable(batches) else [batches]
        try:
            ensure_tables(self.engine, [*([state_store.state_table] if state_key is not None else []),
                                        *([row_counts.counts_table] if self.rules.counting else [])])
            if not self.rules.transactional_ddl:
                return staged.load(self, table, batches, opened, mode, keys, schema_policy, state_key, missing_columns)
            if state_key is not None:
                state_store.prepare_lock(self.engine, state_key)
            with self.engine.begin() as conn:
                return self._load(conn, table, batches, opened, mode, keys, schema_policy, state_key, missing_columns)
        except (SchemaChangeError, DestinationError):
            raise
        except sa.exc.DBAPIError as exc:
            raise DestinationError(
                f"loading table {table} in {self.display_url} failed; nothing was committed: {exc.orig}"
            ) from exc
        finally:
            # Stop the source now (its prefetch thread, open cursors) rather than whenever it is collected.
            for source in opened:
                close = getattr(source, "close", None)
                if close is not None:
                    close()

    def _load(
        self,
        conn: sa.Connection,
        table: str,
        source: Iterable[Batch] | ReadFrom,
        opened: list[Iterable[Batch]],
        mode: WriteMode,
        keys: tuple[str, ...],
        policy: SchemaPolicy,
        state_key: str | None,
        on_missing: MissingColumns = "keep",
    ) -> LoadResult:
        state_before = state_after = None
        counted = self.rules.counting
        if state_key is not None:
            state_store.lock(conn, state_key)  # held until commit: the state read below cannot go stale
            state_before = state_after = state_store.read(conn, state_key)
        if callable(source):
            batches = source(state_before)
            opened.append(batches)
        else:
            batches = source
        reflected = self._reflect(conn, table)
        existing = None if reflected is None else {name: self.rules.portable(t) for name, t in reflected}
        rows_before: int | None = None  # the table's count when the load started
        stored_before = False  # whether that count was stored (else it was counted, and is stored at the end)
        if counted and mode != "replace":
            rows_before = 0 if reflected is None else row_counts.stored(conn, table)
            stored_before = rows_before is not None
            if rows_before is None:  # first load since counts were kept: count once, before writing
                rows_before = self._count(conn, table)
        target = scratch_name("stage", table) if mode == "replace" else table
        load = TableLoad(
            # Only merge declares the key as a constraint: append/replace of a source with repeated keys is legal.
            conn=conn, table=table, target=target, columns=dict(existing or {}),
            primary_key=keys if mode == "merge" else (),
            policy=policy, quote=self.quote, sql_types=self.rules.sql_types, creating=existing is None, rules=self.rules,
            row_keys=keys,
        )
        if mode == "replace" and existing is not None:
            load.create(existing)  # keep the table's columns even if this load does not send them all
        elif existing is not None:
            load.created = True
            if mode == "merge":
                self._ensure_unique(conn, table, keys)
        writer = self._writer(load)
        children = ChildTables(self, conn, load, mode, keys)
        rows_read = written = skipped = 0
        rows_from: Counter[str] = Counter()
        inserted: int | None = 0  # rows added to the table; None once a batch cannot tell
        for batch in batches:
            rows_read += len(batch.rows)
            skipped += int(batch.extra.get("bad_rows", 0))
            if batch.state is not None:
                state_after = batch.state
            offset = rows_from[batch.origin]  # rows of this origin (file, page) in earlier batches
            rows_from[batch.origin] += len(batch.rows)
            columns, rows = load.prepare(batch, offset)
            if not rows:
                if batch.children:
                    raise DestinationError(f"table {table}: a batch from {batch.origin or 'the source'} has child rows "
                                           "but no parent rows to link them to")
                continue
            children.before_parent(columns, rows)
            if mode == "merge":
                missing = [k for k in keys if k not in columns]
                if missing:
                    raise SchemaChangeError(
                        f"table {table}: batch from {batch.origin or 'the source'} has no primary key "
                        f"column(s) {', '.join(missing)}; merge needs them in every row"
                    )
            try:
                if mode == "merge":
                    merged = writer.merge(conn, target, columns, rows, keys)
                    written += merged.written
                    inserted = None if inserted is None or merged.inserted is None else inserted + merged.inserted
                else:
                    appended = writer.append(conn, target, columns, rows)
                    written += appended
                    inserted = None if inserted is None else inserted + appended
            except (OverflowError, sa.exc.DBAPIError, psycopg.Error) as exc:
                located = out_of_range(table, batch.origin, offset, columns, rows, load.columns)
                if located is None:
                    raise
                raise located from exc
            if batch.children:
                children.write(batch.children)
        missing = [c for c in existing or {} if c not in load.arrived] if load.arrived else []
        if missing:
            self._missing(conn, load, missing, mode, keys, on_missing)
        if mode == "replace" and load.created:  # else: an empty source and no table: nothing to swap in
            self._swap(conn, target, table)
        child_rows, child_changes = children.finish(counted)
        if state_key is not None and state_after is not None and state_after != state_before:
            state_store.write(conn, state_key, state_after)
        unchanged = mode != "replace" and not load.changes and reflected is not None
        row_count: int | None = None
        if counted and load.created:
            if mode == "replace":
                row_count = row_counts.record(conn, table, count=written, delta=None)
            elif inserted == 0 and reflected is not None and stored_before:
                row_count = rows_before  # nothing added: the stored count stands (no write)
            elif inserted is not None and rows_before is not None:
                # Added to whatever is stored now: a load that committed meanwhile has already added its rows.
                row_count = row_counts.record(conn, table, count=rows_before + inserted,
                                              delta=None if reflected is None else inserted)
            else:
                row_count = row_counts.record(conn, table, count=self._count(conn, table), delta=None)
        info = self._describe(conn, table, reflected if unchanged else None, row_count=row_count)
        if state_key is None:
            state_after = None  # nothing was committed, so report nothing
        return LoadResult(
            rows_written=written, table=info, rows_read=rows_read, state_before=state_before,
            state_after=state_after, schema_changes=(*load.changes, *child_changes), rows_skipped=skipped,
            missing_columns=tuple(missing), child_tables=child_rows,
        )

    def _missing(
        self, conn: sa.Connection, load: TableLoad, missing: list[str], mode: WriteMode, keys: tuple[str, ...],
        policy: MissingColumns,
    ) -> None:
        """Apply `policy` to the table's columns that no batch of this load sent, and record what was done."""
        table, names = load.table, ", ".join(missing)
        if policy == "fail":
            raise SchemaChangeError(
                f"table {load.table}: the source no longer sends column(s) {names} (removed or renamed) and "
                "missing_columns is 'fail'; nothing was committed. Restore them at the source, or set "
                "missing_columns to 'keep' (keep their values) or 'accept'"
            )
        if mode != "replace":
            # The column stays; append leaves it NULL in the new rows, merge leaves existing rows' values as they are.
            for column in missing:
                load.events.append(f"column {column} is no longer sent: kept, NULL in new rows ({policy})")
            return
        if policy == "accept":
            for column in missing:
                conn.exec_driver_sql(f"ALTER TABLE {self.quote(load.target)} DROP COLUMN {self.quote(column)}")
                load.events.append(f"dropped column {column}: no longer sent by the source (missing_columns 'accept')")
                load.columns.pop(column, None)
            return
        if not keys:
            raise SchemaChangeError(
                f"table {table}: the source no longer sends column(s) {names} (removed or renamed); write mode "
                "'replace' would erase all their values and, without a primary_key, cannot carry them over to the "
                "new rows. Declare primary_key, set missing_columns to 'accept' to drop them, or restore them at "
                "the source; nothing was committed"
            )
        # Each row whose key the source still sends keeps its previous values of the missing columns.
        q = self.quote
        match = " AND ".join(f"old.{q(k)} = {q(load.target)}.{q(k)}" for k in keys)
        for column in missing:
            kept = conn.exec_driver_sql(
                f"UPDATE {q(load.target)} SET {q(column)} = (SELECT old.{q(column)} FROM {q(table)} AS old "  # noqa: S608 (identifiers quoted by the dialect)
                f"WHERE {match} LIMIT 1) WHERE EXISTS (SELECT 1 FROM {q(table)} AS old WHERE {match} "
                f"AND old.{q(column)} IS NOT NULL)"
            ).rowcount
            load.events.append(f"column {column} is no longer sent: kept its values for {kept} row(s) by "
                               f"{', '.join(keys)}")

    def _writer(self, load: TableLoad) -> Writer:
        if self.dialect == "postgresql":
            return PostgresWriter(self.quote, lambda c: load.columns[c])
        if self.dialect == "sqlite":
            return SqliteWriter(self.quote, lambda c: load.columns[c])
        return GenericWriter(lambda name, cols: load.sa_table(name, cols))

    def _reflect(self, conn: sa.Connection, table: str) -> list[tuple[str, Any]] | None:
        """The table's (column, SQL type) pairs, or None if there is no such table."""
        return reflect_columns(conn, table)

    def _ensure_unique(
        self, conn: sa.Connection, table: str, keys: tuple[str, ...], columns: dict[str, ColumnType] | None = None,
    ) -> None:
        # ON CONFLICT needs a unique index on exactly the key columns; tables created by merge have a primary
        # key, tables created by append get this index the first time they are merged into.
        inspector = sa.inspect(conn)
        wanted = sorted(keys)
        if sorted(inspector.get_pk_constraint(table).get("constrained_columns") or []) == wanted:
            return
        if any(ix.get("unique") and sorted(c or "" for c in ix["column_names"]) == wanted for ix in inspector.get_indexes(table)):
            return
        if any(sorted(uc["column_names"]) == wanted for uc in inspector.get_unique_constraints(table)):
            return
        digest = hashlib.sha1(f"{table}:{','.join(keys)}".encode(), usedforsecurity=False).hexdigest()[:12]
        cols = ", ".join(self.quote(k) for k in keys)
        rules = self.rules
        # A key column of a type that cannot be indexed whole (MySQL's LONGTEXT) first takes its key type.
        statements = [rules.widen_sql(self.quote(table), self.quote(k), rules.key_types[t].compile(dialect=conn.dialect))
                      for k, t in (columns or {}).items() if k in keys and t in rules.key_types]
        # MySQL has no CREATE INDEX IF NOT EXISTS; its loads hold the table's lock (staged.py), so the check
        # above cannot go stale.
        exists = " IF NOT EXISTS" if rules.transactional_ddl else ""
        statements.append(f"CREATE UNIQUE INDEX{exists} {self.quote('ux_' + digest)} ON {self.quote(table)} ({cols})")
        try:
            if rules.transactional_ddl:
                with conn.begin_nested():
                    for statement in statements:
                        conn.exec_driver_sql(statement)
            else:  # DDL commits on its own: a savepoint around it would be gone before its release
                for statement in statements:
                    conn.exec_driver_sql(statement)
        except sa.exc.DBAPIError as exc:
            raise DestinationError(
                f"table {table}: cannot merge on ({', '.join(keys)}): existing rows are not unique on those "
                f"columns or a column is missing ({exc.orig}); deduplicate the table or load it with 'replace'"
            ) from exc

    # -- state ---------------------------------------------------------------------------------------------

    def read_state(self, state_key: str) -> dict[str, Any] | None:
        """The incremental state committed by the last successful load with this `state_key`."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(state_store.STATE_TABLE):
                return None
            return state_store.read(conn, state_key)

    # -- transforms ----------------------------------------------------------------------------------------

    def replace_with_query(self, table: str, select_sql: str) -> TableInfo:
        """Materialize `select_sql` as `table`, atomically replacing the previous version."""
        check_identifier(table, "table name")
        if not self.rules.transactional_ddl:
            return staged.replace_with_query(self, table, select_sql)
        staging = scratch_name("stage", table)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {self.quote(staging)} AS {select_sql}"))
            if self.dialect == "sqlite":
                staging = self._typed_sqlite_copy(conn, staging)
            self._swap(conn, staging, table)
            row_counts.forget(conn, table)  # loads into this table count it afresh
            return self._describe(conn, table)

    def _typed_sqlite_copy(self, conn: sa.Connection, staging: str) -> str:
        """SQLite's CREATE TABLE … AS SELECT declares no type for computed columns (SUM(x), CASE …), so the
        UI's schema and schema_drift would see NULL. Each such column gets the type its values have (REAL if
        any value is a float, INTEGER if all are integers, else TEXT/BLOB) in a typed copy of the table."""
        declared = [(r[1], r[2]) for r in conn.execute(sa.text(f"PRAGMA table_info({self.quote(staging)})"))]
        untyped = [name for name, sql_type in declared if not sql_type]
        if not untyped:
            return staging
        inferred: dict[str, str] = {}
        for name in untyped:
            kinds = {row[0] for row in conn.execute(sa.text(
                f"SELECT DISTINCT typeof({self.quote(name)}) FROM {self.quote(staging)} "  # noqa: S608 (identifiers quoted by the dialect)
                f"WHERE {self.quote(name)} IS NOT NULL"))}
            if not kinds:
                continue  # no values to learn from: leave it untyped rather than guess
            inferred[name] = ("REAL" if kinds <= {"integer", "real"} and "real" in kinds else
                              "INTEGER" if kinds == {"integer"} else "BLOB" if kinds == {"blob"} else "TEXT")
        if not inferred:
            return staging
        typed = f"{staging}_t"
        columns = ", ".join(f"{self.quote(n)} {inferred.get(n, t)}".rstrip() for n, t in declared)
        conn.execute(sa.text(f"CREATE TABLE {self.quote(typed)} ({columns})"))
        conn.execute(sa.text(f"INSERT INTO {self.quote(typed)} SELECT * FROM {self.quote(staging)}"))  # noqa: S608 (identifiers quoted by the dialect)
        conn.execute(sa.text(f"DROP TABLE {self.quote(staging)}"))
        return typed

    def _swap(self, conn: sa.Connection, staging: str, table: str) -> None:
        # PostgreSQL, SQLite: both statements are in the load's transaction. MySQL: one atomic RENAME TABLE.
        # Either way readers see the old table or the new one.
        old = None
        if not self.rules.transactional_ddl and sa.inspect(conn).has_table(table):
            old = scratch_name("old", table)
        for statement in self.rules.swap_sql(staging, table, old, self.quote):
            conn.exec_driver_sql(statement)

    def _count(self, conn: sa.Connection, table: str) -> int:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {self.quote(table)}")).scalar_one())  # noqa: S608 (identifiers quoted by the dialect)

    def _describe(
        self,
        conn: sa.Connection,
        table: str,
        reflected: list[tuple[str, Any]] | None = None,
        *,
        row_count: int | None = None,
    ) -> TableInfo:
        """Columns and row count of `table`; `row_count` when the load already knows it (else a COUNT)."""
        reflected = reflected if reflected is not None else self._reflect(conn, table)
        if reflected is None:
            return TableInfo(name=table, row_count=0, columns=())
        columns = tuple((name, str(sql_type)) for name, sql_type in reflected)
        count = row_count if row_count is not None else self._count(conn, table)
        return TableInfo(name=table, row_count=count, columns=columns)

    def describe(self, table: str) -> TableInfo:
        """Row count and columns of `table` as it is now."""
        with self.engine.connect() as conn:
            return self._describe(conn, table)

