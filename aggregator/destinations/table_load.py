"""The table side of one load: create the target, evolve its schema batch by batch, shape rows to fit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import check_identifier
from aggregator.destinations.schema import SchemaPolicy, column_name, plan
from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch, ColumnType


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
    changes: list[str] = field(default_factory=list)
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
        incoming = {n: batch.types[c] for n, c in zip(names, batch.columns)}
        if not self.created:
            self.create(incoming)
            return names, batch.rows
        change = plan(self.table, self.columns, incoming, self.policy)
        dialect = self.conn.dialect
        for name, column_type in change.add:
            ddl_type = self.sql_types[column_type].compile(dialect=dialect)
            self.conn.exec_driver_sql(
                f"ALTER TABLE {self.quote(self.target)} ADD COLUMN {self.quote(name)} {ddl_type}"
            )
            self.columns[name] = column_type
            self.changes.append(f"added column {name} ({column_type.value})")
        for name, column_type in change.widen:
            if dialect.name == "postgresql":
                ddl_type = self.sql_types[column_type].compile(dialect=dialect)
                self.conn.exec_driver_sql(
                    f"ALTER TABLE {self.quote(self.target)} ALTER COLUMN {self.quote(name)} TYPE {ddl_type}"
                )
            # SQLite columns are dynamically typed: wider values are stored as they come, no DDL needed.
            self.changes.append(f"widened {name} from {self.columns[name].value} to {column_type.value}")
            self.columns[name] = column_type
        if not change.drop:
            return names, batch.rows
        keep = [i for i, n in enumerate(names) if n not in change.drop]
        self.changes.append(f"discarded column(s) {', '.join(change.drop)}")
        if isinstance(batch.rows, ArrowRows):  # stay columnar: COPY takes the table as it is
            return tuple(names[i] for i in keep), batch.rows.select(keep)
        return tuple(names[i] for i in keep), [tuple(row[i] for i in keep) for row in batch.rows]
