"""The table side of one load: create the target, evolve its schema batch by batch, shape rows to fit."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from aggregator.destinations.dialects import DialectRules, rules_for
from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import check_identifier
from aggregator.destinations.schema import SchemaPolicy, column_name, plan
from aggregator.destinations.values import unstorable_float
from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch, ColumnType, type_of
from connectors.records import conform

# The row-order column of a staging table (`TableLoad.row_order`): never part of the table's columns.
ORDER_COLUMN = "_aggregator_ord"


@dataclass
class TableLoad:
    conn: sa.Connection
    table: str  # the table the user named (for messages)
    target: str  # where rows go: the table itself, or the staging table of a replace
    columns: dict[str, ColumnType]  # the target's columns as they are now
    primary_key: tuple[str, ...]
    policy: SchemaPolicy
    quote: Callable[[str], str]
    sql_types: dict[ColumnType, sa.types.TypeEngine[Any]]
    created: bool = False
    creating: bool = False  # this load creates the table: new columns and safe widenings define it
    events: list[str] = field(default_factory=list)
    discarded: Counter[tuple[str, ColumnType, ColumnType]] = field(default_factory=Counter)
    arrived: set[str] = field(default_factory=set)  # every column some batch of this load sent (SQL names)
    rules: DialectRules = field(default_factory=lambda: rules_for(""))  # the dialect's DDL spellings
    # A staging table that keeps the order rows arrived in (an auto-increment ORDER_COLUMN), so an upsert
    # from it lets the last row per key win; TEMPORARY: it goes with the session, even a killed one.
    row_order: bool = False
    temporary: bool = False
    row_keys: tuple[str, ...] = ()  # columns whose values name a row in messages (the load's primary key)
    _names: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def sa_table(self, name: str, columns: Sequence[str]) -> sa.Table:
        return sa.Table(name, sa.MetaData(), *(sa.Column(c, self.sql_types[self.columns[c]]) for c in columns))

    def create(self, columns: dict[str, ColumnType]) -> None:
        missing = [k for k in self.primary_key if k not in columns]
        if missing:
            raise SchemaChangeError(
                f"table {self.table}: primary key column(s) {', '.join(missing)} are not among the source's "
                f"columns ({', '.join(columns)})"
            )
        order = [sa.Column(ORDER_COLUMN, sa.BigInteger, primary_key=True, autoincrement=True)] if self.row_order else []
        sa.Table(
            self.target,
            sa.MetaData(),
            *(
                sa.Column(name, self._sql_type(t, key=name in self.primary_key), primary_key=name in self.primary_key,
                          nullable=name not in self.primary_key, autoincrement=False)
                for name, t in columns.items()
            ),
            *order,
            prefixes=["TEMPORARY"] if self.temporary else [],
            **self.rules.table_kwargs,
        ).create(self.conn)
        self.columns = dict(columns)
        self.created = True

    def _sql_type(self, column_type: ColumnType, *, key: bool = False) -> sa.types.TypeEngine[Any]:
        return (self.rules.key_types.get(column_type) if key else None) or self.sql_types[column_type]

    def _normalized(self, columns: tuple[str, ...], origin: str) -> tuple[str, ...]:
        names = self._names.get(columns)
        if names is None:
            names = tuple(column_name(c) for c in columns)
            if len(set(names)) != len(names):
                raise SchemaChangeError(
                    f"table {self.table}: columns from {origin or 'the source'} collide after normalizing to "
                    f"SQL names: {list(columns)} -> {list(names)}; rename them in the source"
                )
            for name in names:
                check_identifier(name, "column name")
            self._names[columns] = names
        return names

    def prepare(self, batch: Batch, offset: int = 0) -> tuple[tuple[str, ...], Sequence[Sequence[Any]]]:
        """The batch's columns and rows as they will be written, after any DDL the policy allows; refused if
        a value would be stored as another (`offset`: rows of the batch's origin in earlier batches)."""
        columns, rows = self._shape(batch)
        refused = unstorable_float(self.table, batch.origin, offset, columns, rows, self.columns,
                                   self.rules.float_specials, self.rules.display_name, self.row_keys)
        if refused is not None:
            raise refused
        return columns, rows

    def _shape(self, batch: Batch) -> tuple[tuple[str, ...], Sequence[Sequence[Any]]]:
        if not batch.columns:
            return (), ()  # e.g. an empty JSON file: nothing to create or write
        names = self._normalized(batch.columns, batch.origin)
        self.arrived.update(names)
        seen = {n: batch.seen_types(c) for n, c in zip(names, batch.columns)}
        change = plan(self.table, self.columns, seen, self.policy, creating=self.creating or not self.created)
        if change.errors:
            raise self._first_error(change.errors, names, batch.rows)
        for event in change.events:
            self._event(event)
        new = self._first_value_order(change.add, names, batch.rows)
        if not self.created:
            if not new:
                return (), ()  # every value so far is NULL: no column has a type to create it with
            self.create(dict(new))
        else:
            self._alter(new, change.widen)
        for name in change.drop:
            self._event(f"discarded new column {name}")
        # Untyped (all-NULL) columns the table has are written, so a merge sets them to NULL.
        keep = [i for i, n in enumerate(names) if n in change.types or (not seen[n] and n in self.columns)]
        fixes = [(i, self.columns[names[i]], change.discard.get(names[i], ())) for i in keep
                 if seen[names[i]] and seen[names[i]] != (self.columns[names[i]],)]
        if len(keep) == len(names) and not fixes:
            return names, batch.rows
        rows: Sequence[Sequence[Any]] = batch.rows
        if len(keep) != len(names):
            # Columnar rows stay columnar (COPY takes the table as it is) unless values must be conformed.
            rows = (batch.rows.select(keep) if isinstance(batch.rows, ArrowRows) and not fixes
                    else [tuple(row[i] for i in keep) for row in batch.rows])
        if fixes:
            position = {i: k for k, i in enumerate(keep)}
            rows = self._conform(rows, [(position[i], names[i], t, d) for i, t, d in fixes])
        return tuple(names[i] for i in keep), rows

    def _alter(self, add: list[tuple[str, ColumnType]], widen: list[tuple[str, ColumnType]]) -> None:
        dialect = self.conn.dialect
        for name, column_type in add:
            ddl_type = self.sql_types[column_type].compile(dialect=dialect)
            self.conn.exec_driver_sql(
                f"ALTER TABLE {self.quote(self.target)} ADD COLUMN {self.quote(name)} {ddl_type}"
            )
            self.columns[name] = column_type
        if widen and dialect.name == "sqlite":
            self._rebuild_sqlite(dict(widen))
            return
        for name, column_type in widen:
            ddl_type = self.sql_types[column_type].compile(dialect=dialect)
            self.conn.exec_driver_sql(self.rules.widen_sql(self.quote(self.target), self.quote(name), ddl_type))
            self.columns[name] = column_type

    def _rebuild_sqlite(self, widen: dict[str, ColumnType]) -> None:
        """Widen columns on SQLite, which has no ALTER COLUMN TYPE: copy into a table with the new types.

        Only declaring the wider type keeps the table the same whatever the batch size (a column created
        wide and one widened later look alike), and keeps later loads from re-widening it each time."""
        old_columns = dict(self.columns)
        rebuilt = f"_widen_{uuid.uuid4().hex[:12]}"
        self.columns.update(widen)
        target, self.target, created = self.target, rebuilt, self.created
        try:
            self.create(dict(self.columns))
        finally:
            self.target, self.created = target, created
        selected = []
        for name, old_type in old_columns.items():
            column = self.quote(name)
            if widen.get(name) is ColumnType.TIMESTAMP and old_type is ColumnType.DATE:
                # The text form SQLAlchemy's SQLite DateTime reads back.
                column = f"CASE WHEN {column} IS NULL THEN NULL ELSE {column} || ' 00:00:00.000000' END"
            elif widen.get(name) is ColumnType.FLOAT:
                column = f"CAST({column} AS REAL)"
            selected.append(column)
        names = ", ".join(self.quote(n) for n in old_columns)
        self.conn.exec_driver_sql(
            f"INSERT INTO {self.quote(rebuilt)} ({names}) SELECT {', '.join(selected)} FROM {self.quote(target)}"  # noqa: S608 (identifiers quoted by the dialect)
        )
        self.conn.exec_driver_sql(f"DROP TABLE {self.quote(target)}")
        self.conn.exec_driver_sql(f"ALTER TABLE {self.quote(rebuilt)} RENAME TO {self.quote(target)}")

    def _conform(
        self, rows: Sequence[Sequence[Any]], fixes: list[tuple[int, str, ColumnType, tuple[ColumnType, ...]]]
    ) -> list[tuple[Any, ...]]:
        """Rows whose drifting columns hold values of the column's type; values of a discarded type -> NULL."""
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(row)
            for index, name, column_type, discard in fixes:
                value = values[index]
                if value is None:
                    continue
                value_type = type_of(value)
                if value_type is not None and value_type in discard:
                    values[index] = None
                    self.discarded[(name, value_type, column_type)] += 1
                else:
                    values[index] = conform(value, column_type)
            out.append(tuple(values))
        return out

    def _event(self, event: str) -> None:
        if event not in self.events:
            self.events.append(event)

    @property
    def changes(self) -> list[str]:
        """Every schema change and discarded value of the load so far, worded the same for any batch size."""
        notes = [f"discarded {count} {value_type.value} value(s) of {column_type.value} column {name}"
                 for (name, value_type, column_type), count in self.discarded.items()]
        return [*self.events, *notes]

    @staticmethod
    def _first_error(
        errors: list[tuple[str, ColumnType | None, SchemaChangeError]],
        names: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
    ) -> SchemaChangeError:
        """The error of the value that comes first (by row, then column): the one a batch of one row meets."""
        index = {n: i for i, n in enumerate(names)}

        def first_row(error: tuple[str, ColumnType | None, SchemaChangeError]) -> tuple[int, int]:
            name, value_type, _ = error
            i = index[name]
            for r, row in enumerate(rows):
                value = row[i]
                if value is not None and (value_type is None or type_of(value) is value_type):
                    return r, i
            return len(rows), i

        return min(errors, key=first_row)[2]

    @staticmethod
    def _first_value_order(
        columns: list[tuple[str, ColumnType]], names: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> list[tuple[str, ColumnType]]:
        # New columns in the order their first value arrives: the order one row per batch would give.
        if len(columns) < 2:
            return columns
        index = {n: i for i, n in enumerate(names)}

        def first(name: str) -> int:
            i = index[name]
            return next((r for r, row in enumerate(rows) if row[i] is not None), len(rows))

        return sorted(columns, key=lambda c: (first(c[0]), index[c[0]]))
