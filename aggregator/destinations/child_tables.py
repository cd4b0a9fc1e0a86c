"""The child tables of a nested load (connectors/nested.py): written in the parent's transaction, by its rules.

A parent table `t` whose rows carry `_dlt_id` owns the tables `t__<path>` that have a `_dlt_root_id` column.
Each write mode means for them what it means for the parent, per record:

- append: the children of the new records are added;
- replace: every child table is rebuilt in a staging table and swapped in with the parent (a child table that
  this load sends nothing for is emptied: no record has that array any more);
- merge: a record that replaces an existing one (same primary key) replaces all its children, in every child
  table, through `_dlt_root_id`; of a key repeated in one batch only the last record's children are kept,
  as only its row is.

A failed load rolls the child tables back with the parent: everything runs on the load's connection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from aggregator.destinations import row_counts
from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import check_identifier, scratch_name
from aggregator.destinations.schema import WriteMode, column_name
from aggregator.destinations.table_load import TableLoad
from aggregator.destinations.writers import Writer
from connectors.batches import Batch, ColumnType
from connectors.nested import MAX_IDENTIFIER, ROOT_ID, ROW_ID, SEPARATOR, shorten
from connectors.sql.reflect import reflect_columns

if TYPE_CHECKING:
    from aggregator.destinations.sql import SqlDestination

# Room left for the path after `<table>__`: a child table name must still start with it to be found again.
MIN_PATH_ROOM = 12
_CHUNK = 500  # bound parameters per IN (...) list


def child_table_name(table: str, path: str) -> str:
    """The table of the array at `path` (`items`, `items__tags`) below `table`: `table__items`, shortened with
    a hash when longer than an identifier may be."""
    if len(table) + len(SEPARATOR) + MIN_PATH_ROOM > MAX_IDENTIFIER:
        raise SchemaChangeError(
            f"table {table}: the name leaves too little room for its child tables ({table}{SEPARATOR}<path> must "
            f"fit {MAX_IDENTIFIER} characters); give the source a shorter `table:` or set nested.arrays to 'json'"
        )
    # The path is cut (with its hash) before it is normalized: normalizing truncates without one.
    return check_identifier(shorten(f"{table}{SEPARATOR}{column_name(shorten(path))}"), "child table name")


class ChildTables:
    def __init__(self, dest: SqlDestination, conn: sa.Connection, parent: TableLoad, mode: WriteMode,
                 keys: tuple[str, ...]) -> None:
        self.dest, self.conn, self.parent, self.mode, self.keys = dest, conn, parent, mode, keys
        self.loads: dict[str, tuple[TableLoad, Writer]] = {}
        self.written: Counter[str] = Counter()
        self._existing: dict[str, dict[str, ColumnType]] | None = None
        self._winners: set[Any] | None = None

    @property
    def nested(self) -> bool:
        """Whether the parent is a nested parent (its rows have ids that children point to)."""
        return ROW_ID in self.parent.columns

    def existing(self) -> dict[str, dict[str, ColumnType]]:
        """The parent's child tables as they were when the load started: prefix `<table>__` and a root id."""
        if self._existing is None:
            prefix = f"{self.parent.table}{SEPARATOR}"
            found: dict[str, dict[str, ColumnType]] = {}
            for name in sa.inspect(self.conn).get_table_names():
                if not name.startswith(prefix):
                    continue
                columns = reflect_columns(self.conn, name) or []
                if any(c == ROOT_ID for c, _ in columns):
                    found[name] = {c: self.parent.rules.portable(t) for c, t in columns}
            self._existing = found
        return self._existing

    def before_parent(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Merge: delete the children of the records this batch replaces (run before the parent rows are
        merged, while the replaced rows still hold their old ids)."""
        self._winners = None
        if self.mode != "merge" or ROW_ID not in columns or not rows:
            return
        id_at = columns.index(ROW_ID)
        key_at = [columns.index(k) for k in self.keys]
        last: dict[tuple[Any, ...], Any] = {}
        for row in rows:
            last[tuple(row[i] for i in key_at)] = row[id_at]
        self._winners = set(last.values())
        tables = [*{*self.existing(), *(n for n, (load, _) in self.loads.items() if load.created)}]
        if not tables or not self.parent.created:
            return
        parent = sa.table(self.parent.target, *(sa.column(k) for k in (*self.keys, ROW_ID)))
        keys = list(last)
        old: list[Any] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            match = (parent.c[self.keys[0]].in_([k[0] for k in chunk]) if len(self.keys) == 1
                     else sa.tuple_(*(parent.c[k] for k in self.keys)).in_(chunk))
            old += [r[0] for r in self.conn.execute(sa.select(parent.c[ROW_ID]).where(match)) if r[0] is not None]
        for name in tables:
            child = sa.table(self.loads[name][0].target if name in self.loads else name, sa.column(ROOT_ID))
            for start in range(0, len(old), _CHUNK):
                self.conn.execute(sa.delete(child).where(child.c[ROOT_ID].in_(old[start:start + _CHUNK])))

    def write(self, children: Mapping[str, Batch]) -> None:
        """Write one batch's child rows (after its parent rows)."""
        for path, batch in children.items():
            name = child_table_name(self.parent.table, path)
            load, writer = self._load_for(name)
            if self._winners is not None and ROOT_ID in batch.columns:
                at = batch.columns.index(ROOT_ID)
                kept = [row for row in batch.rows if row[at] in self._winners]
                if len(kept) != len(batch.rows):
                    batch = Batch(columns=batch.columns, types=batch.types, rows=kept, origin=batch.origin,
                                  mixed=batch.mixed, untyped=batch.untyped)
            columns, rows = load.prepare(batch)
            if rows:
                self.written[name] += writer.append(self.conn, load.target, columns, rows)

    def _load_for(self, name: str) -> tuple[TableLoad, Writer]:
        if name not in self.loads:
            existing = self.existing().get(name)
            if existing is None and name in self._all_tables():
                raise SchemaChangeError(
                    f"table {self.parent.table}: its child table {name} would overwrite an existing table of that "
                    f"name that is not a child table (no {ROOT_ID} column); rename that table or this source's"
                )
            target = scratch_name("stage", name) if self.mode == "replace" else name
            load = TableLoad(conn=self.conn, table=name, target=target, columns=dict(existing or {}), primary_key=(),
                             policy=self.parent.policy, quote=self.parent.quote, sql_types=self.parent.sql_types,
                             creating=existing is None, rules=self.parent.rules)
            if self.mode == "replace" and existing is not None:
                load.create(existing)
            elif existing is not None:
                load.created = True
            self.loads[name] = (load, self.dest._writer(load))
        return self.loads[name]

    def _all_tables(self) -> set[str]:
        return set(sa.inspect(self.conn).get_table_names())

    def finish(self, counted: bool) -> tuple[dict[str, int], list[str]]:
        """Swap in (replace) or empty the child tables; returns rows written per child table and their schema
        changes (`<child>: <change>`)."""
        if not self.loads and not (self.mode == "replace" and self.nested):
            return {}, []
        if self.mode == "replace":
            for name, (load, _) in self.loads.items():
                if load.created:
                    self.dest._swap(self.conn, load.target, name)
            for name in self.existing():
                if name not in self.loads:  # no record of this load has that array: nothing of it remains
                    self.conn.exec_driver_sql(f"DELETE FROM {self.dest.quote(name)}")  # noqa: S608 (identifier quoted by the dialect)
                    self.written.setdefault(name, 0)
        if counted:
            for name in {*self.loads, *self.written}:
                row_counts.forget(self.conn, name)  # counted afresh when next asked
        changes = [f"{name}: {change}" for name, (load, _) in self.loads.items() for change in load.changes]
        return {name: self.written.get(name, 0) for name in sorted({*self.loads, *self.written})}, changes
