"""Loads into a warehouse whose DDL commits the open transaction (MySQL, MariaDB): stage, DDL, one transaction.

MySQL ends the current transaction before every CREATE, ALTER, RENAME or DROP TABLE. A load that added a column
between two batches would commit the rows written before it without their cursor; a failure after that could
not roll back, and the rerun would load those rows twice. So a load here runs in three phases, on one session:

1. Stage: every batch goes into a staging table private to this load (TEMPORARY for append and merge, so it
   disappears with the session, even a killed one). Schema evolution (new columns, widening) is DDL on the
   stage only; whatever it commits is the stage's, never the table's.
2. DDL on the table, before the data transaction: create it, add and widen columns, the merge key's unique
   index — each checked against the table as it is, so a rerun after a failure finds them done. A load that
   fails after this point leaves these (nullable columns, a wider type) but no rows and no cursor.
3. One InnoDB transaction: `INSERT … SELECT` from the stage (merge: `ON DUPLICATE KEY UPDATE`, in arrival
   order so a key's last row wins) and the incremental state row, committed together.

Replace swaps the stage in with one atomic `RENAME TABLE t TO old, stage TO t` (which commits by itself), then
commits the state. A crash between the two leaves the new table with the previous cursor; the next run reads
from that cursor again and replaces the table again. Replace rewrites the table, never adds to it, so those
rows arrive once and none is lost. Committing the state first would be worse: a crash before the swap would
move the cursor past rows that never reached the table. A replace's stage is permanent (a TEMPORARY table cannot
be renamed into the table), so one killed before the swap leaves it, and one killed between the swap and the drop
leaves the old table: both carry a prefix of their table (identifiers.scratch_name), and the next load or
transform of that table drops them under the table's lock (`drop_stale`).

Overlapping loads of one stream queue on MySQL named locks (`GET_LOCK`), one for the stream's state key and one
for the table, taken before the state is read and held by the session through all three phases (a row lock
would be released by the first implicit commit). A killed process's session ends and its locks with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import sqlalchemy as sa

from aggregator.destinations import state as state_store
from aggregator.destinations.dialects import mysql_key_collation
from aggregator.destinations.errors import DestinationError, SchemaChangeError
from aggregator.destinations.identifiers import scratch_name, scratch_prefix
from aggregator.destinations.results import LoadResult, ReadFrom, TableInfo
from aggregator.destinations.schema import MissingColumns, SchemaPolicy, WriteMode
from aggregator.destinations.table_load import ORDER_COLUMN, TableLoad
from aggregator.destinations.values import out_of_range
from aggregator.destinations.writers import MysqlWriter
from connectors.batches import Batch, ColumnType

if TYPE_CHECKING:
    from aggregator.destinations.sql import SqlDestination

log = logging.getLogger(__name__)

# How long a load waits for another load of the same stream or table (PostgreSQL's advisory lock waits without
# limit; a day bounds a lock held by a hung client).
LOCK_TIMEOUT_SECONDS = 86_400


def lock_name(kind: str, key: str) -> str:
    """A MySQL lock name (at most 64 characters) for `key`; hashed so any key fits and none can collide."""
    return f"aggregator.{kind}:" + hashlib.sha256(key.encode()).hexdigest()[:40]


@contextmanager
def named_locks(conn: sa.Connection, names: list[str]) -> Iterator[None]:
    """Hold MySQL named locks `names` (taken in this order, released in the reverse) on `conn`'s session."""
    taken: list[str] = []
    try:
        for name in names:
            got = conn.exec_driver_sql("SELECT GET_LOCK(%s, %s)", (name, LOCK_TIMEOUT_SECONDS)).scalar()
            if got != 1:
                raise DestinationError(f"waited {LOCK_TIMEOUT_SECONDS} s for another load to release {name}")
            taken.append(name)
        conn.commit()  # GET_LOCK is not transactional; the next read starts a fresh snapshot after the lock
        yield
    finally:
        for name in reversed(taken):
            try:
                conn.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
            except sa.exc.DBAPIError:  # the session is gone, and its locks with it
                log.warning("could not release lock %s: the connection was lost", name)


def load(
    dest: SqlDestination, table: str, source: Iterable[Batch] | ReadFrom, opened: list[Iterable[Batch]],
    mode: WriteMode, keys: tuple[str, ...], policy: SchemaPolicy, state_key: str | None, on_missing: MissingColumns,
) -> LoadResult:
    """`SqlDestination.load` on a dialect without transactional DDL (see the module docstring)."""
    rules = dest.rules
    stage = scratch_name("stage", table)
    temporary = mode != "replace"  # a TEMPORARY table cannot be renamed into a permanent one
    locks = [*([lock_name("state", state_key)] if state_key is not None else []), lock_name("table", table)]
    with dest.engine.connect() as conn, named_locks(conn, locks):
        drop_stale(conn, dest, table)
        try:
            state_before = state_after = None if state_key is None else state_store.read(conn, state_key)
            if callable(source):
                batches = source(state_before)
                opened.append(batches)
            else:
                batches = source
            reflected = dest._reflect(conn, table)
            existing = None if reflected is None else {name: rules.portable(t) for name, t in reflected}
            conn.commit()
            # The stage declares no key (a source may repeat one; the upsert resolves it) and keeps arrival order.
            load_ = TableLoad(conn=conn, table=table, target=stage, columns=dict(existing or {}), primary_key=(),
                              policy=policy, quote=dest.quote, sql_types=rules.sql_types, creating=existing is None,
                              rules=rules, row_order=temporary, temporary=temporary, row_keys=keys)
            if existing is not None:
                load_.create(existing)  # every column of the table, so the stage can take its place
            writer = MysqlWriter(dest.quote)
            rows_read = staged_rows = skipped = 0
            rows_from: Counter[str] = Counter()
            segments: list[tuple[int, frozenset[str]]] = []  # merge: runs of batches with the same columns
            for batch in batches:
                rows_read += len(batch.rows)
                skipped += int(batch.extra.get("bad_rows", 0))
                if batch.state is not None:
                    state_after = batch.state
                if batch.children:
                    raise DestinationError(
                        f"table {table}: nested arrays as child tables are not supported on a MySQL/MariaDB "
                        f"warehouse ({dest.display_url}); set the source's nested.arrays to 'json'")
                offset = rows_from[batch.origin]
                rows_from[batch.origin] += len(batch.rows)
                columns, rows = load_.prepare(batch, offset)
                if not rows:
                    continue
                if mode == "merge":
                    absent = [k for k in keys if k not in columns]
                    if absent:
                        raise SchemaChangeError(
                            f"table {table}: batch from {batch.origin or 'the source'} has no primary key "
                            f"column(s) {', '.join(absent)}; merge needs them in every row")
                if mode == "merge" and (not segments or segments[-1][1] != frozenset(columns)):
                    # A run of batches with other columns starts here: where, so the upsert can tell them apart.
                    after = conn.exec_driver_sql(
                        f"SELECT COALESCE(MAX({dest.quote(ORDER_COLUMN)}), 0) FROM {dest.quote(stage)}").scalar()  # noqa: S608 (identifiers quoted)
                    segments.append((int(after or 0), frozenset(columns)))
                try:
                    staged_rows += writer.append(conn, stage, columns, rows)
                except (OverflowError, sa.exc.DBAPIError) as exc:
                    located = out_of_range(table, batch.origin, offset, columns, rows, load_.columns)
                    if located is None:
                        raise
                    raise located from exc
            missing = [c for c in existing or {} if c not in load_.arrived] if load_.arrived else []
            if missing:
                dest._missing(conn, load_, missing, mode, keys, on_missing)
            conn.commit()
            if mode == "replace":
                if load_.created:
                    dest._swap(conn, stage, table)  # commits: the new table is in place
            elif staged_rows:
                _prepare_table(dest, conn, table, existing, load_, mode, keys)
                conn.commit()
                # The one data transaction: rows and state commit together or not at all.
                sent = [c for c in load_.columns if c in load_.arrived]
                writer.publish(conn, stage, table, sent, keys if mode == "merge" else (), ORDER_COLUMN, segments)
            if state_key is not None and state_after is not None and state_after != state_before:
                state_store.write(conn, state_key, state_after)
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except sa.exc.DBAPIError:  # a lost session rolled back by itself; the original error is the news
                log.warning("could not roll back the load of %s: the connection was lost", table)
            raise
        finally:
            _drop_stage(conn, stage, temporary)
        unchanged = mode != "replace" and not load_.changes and reflected is not None
        info = dest._describe(conn, table, reflected if unchanged else None)
        conn.commit()
    return LoadResult(
        rows_written=staged_rows, table=info, rows_read=rows_read, state_before=state_before,
        state_after=state_after if state_key is not None else None, schema_changes=tuple(load_.changes),
        rows_skipped=skipped, missing_columns=tuple(missing),
    )


def replace_with_query(dest: SqlDestination, table: str, select_sql: str) -> TableInfo:
    """`SqlDestination.replace_with_query` on a dialect without transactional DDL: CREATE TABLE … AS SELECT into
    a stage (which commits by itself), then the atomic swap; under the table's lock, as loads of it are."""
    stage = scratch_name("stage", table)
    with dest.engine.connect() as conn, named_locks(conn, [lock_name("table", table)]):
        drop_stale(conn, dest, table)
        try:
            conn.execute(sa.text(f"CREATE TABLE {dest.quote(stage)} {dest.rules.table_options} AS {select_sql}"))
            dest._swap(conn, stage, table)
            conn.commit()
        finally:
            _drop_stage(conn, stage, temporary=False)
        info = dest._describe(conn, table)
        conn.commit()
    return info


def drop_stale(conn: sa.Connection, dest: SqlDestination, table: str) -> list[str]:
    """Drop the staging tables and swapped-out tables of `table` that a killed load or transform left (their
    DDL committed by itself, so no rollback removed them); returns their names. Only under `table`'s lock:
    every load and transform of `table` holds it while its scratch tables exist, so none of these is live."""
    prefixes = (scratch_prefix("stage", table), scratch_prefix("old", table))
    stale = [name for name in sa.inspect(conn).get_table_names() if name.startswith(prefixes)]
    for name in stale:
        log.warning("dropping %s, left by a killed load or transform of %s", name, table)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {dest.quote(name)}")
    conn.commit()
    return stale


def _prepare_table(
    dest: SqlDestination, conn: sa.Connection, table: str, existing: dict[str, ColumnType] | None, staged: TableLoad,
    mode: WriteMode, keys: tuple[str, ...],
) -> None:
    """Phase 2: give `table` the stage's columns (create it, add and widen columns) and, for merge, a unique key;
    each step only if the table lacks it, so a rerun after a failure repeats nothing."""
    target = TableLoad(conn=conn, table=table, target=table, columns=dict(existing or {}),
                       primary_key=keys if mode == "merge" else (), policy=staged.policy, quote=dest.quote,
                       sql_types=staged.sql_types, rules=staged.rules, created=existing is not None)
    if existing is None:
        target.create(dict(staged.columns))
        return
    add = [(c, t) for c, t in staged.columns.items() if c not in existing]
    widen = [(c, t) for c, t in staged.columns.items() if c in existing and existing[c] is not t]
    target._alter(add, widen)
    if mode == "merge":
        dest._ensure_unique(conn, table, keys, target.columns)
        _unpad_keys(dest, conn, table, [k for k in keys if target.columns.get(k) is ColumnType.TEXT])


def _unpad_keys(dest: SqlDestination, conn: sa.Connection, table: str, text_keys: list[str]) -> None:
    """Give text key columns of a table created before keys were NO PAD (`utf8mb4_bin`, which compares `a ` equal
    to `a`) the key type: NO PAD is stricter, so every key that is unique now stays unique."""
    if not text_keys:
        return
    wanted = mysql_key_collation(conn.dialect)
    found = conn.execute(sa.text(
        "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"), {"t": table}).all()
    key_type = dest.rules.key_types[ColumnType.TEXT].compile(dialect=conn.dialect)
    for name, collation in found:
        if name in text_keys and collation != wanted:
            log.warning("table %s: key column %s compares with %s; changing it to %s", table, name, collation, wanted)
            conn.exec_driver_sql(dest.rules.widen_sql(dest.quote(table), dest.quote(name), key_type))


def _drop_stage(conn: sa.Connection, stage: str, temporary: bool) -> None:
    # After a swap the stage is the table: IF EXISTS, and the name is this load's own, so nothing else is hit.
    try:
        conn.exec_driver_sql(f"DROP {'TEMPORARY ' if temporary else ''}TABLE IF EXISTS `{stage}`")
        conn.commit()
    except sa.exc.DBAPIError:  # a lost session took its TEMPORARY stage along; a permanent one is left behind
        log.warning("could not drop staging table %s", stage)
