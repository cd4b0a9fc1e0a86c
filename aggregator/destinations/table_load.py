"""The table side of one load: create the target, evolve its schema batch by batch, shape rows to fit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import check_identifier
from aggregator.destinations.schema import SchemaPolicy, column_name, plan
from connectors.batches import Batch, ColumnType, type_of
from connectors.records import conform


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
        sa.Table(
            self.target,
            sa.MetaData(),
            *(
                sa.Column(name, self.sql_types[t], primary_key=name in self.primary_key,
                          nullable=name not in self.primary_key, autoincrement=False)
                for name, t in columns.items()
            ),
        ).create(self.conn)
        self.columns = dict(columns)
        self.created = True

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

    def prepare(self, batch: Batch) -> tuple[tuple[str, ...], Sequence[Sequence[Any]]]:
        """The batch's columns and rows as they will be written, after any DDL the policy allows."""
        if not batch.columns:
            return (), ()  # e.g. an empty JSON file: nothing to create or write
        names = self._normalized(batch.columns, batch.origin)
        seen = {n: batch.seen_types(c) for n, c in zip(names, batch.columns)}
        change = plan(self.table, self.columns, seen, self.policy, creating=self.creating or not self.created)
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
        rows = [tuple(row[i] for i in keep) for row in batch.rows] if len(keep) != len(names) else batch.rows
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
        for name, column_type in widen:
            if dialect.name == "postgresql":
                ddl_type = self.sql_types[column_type].compile(dialect=dialect)
                self.conn.exec_driver_sql(
                    f"ALTER TABLE {self.quote(self.target)} ALTER COLUMN {self.quote(name)} TYPE {ddl_type}"
                )
            # SQLite columns are dynamically typed: wider values are stored as they come, no DDL needed.
            self.columns[name] = column_type

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
