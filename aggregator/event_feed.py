"""New event-log records since a cursor, on every Dagster event storage, without rescanning history.

PostgreSQL and consolidated SQLite number events globally, so one `storage_id > cursor` query per event type
is enough. Dagster's default local SQLite storage is sharded per run (storage ids restart in every run), so
there the feed walks the runs updated since the last read and keeps a per-run high-water mark; runs get a new
update timestamp on every status change, so a running run is read again when it finishes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.event_api import EventRecordsFilter
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import deserialize_value

# Re-read runs updated this long before the cursor: two runs can share an update timestamp.
MARGIN = dt.timedelta(seconds=2)
# Global storages: how long after a record was first read every lower id is taken to have committed.
SETTLE_S = 30.0
PRIME_READS = 20
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class FeedCursor:
    """JSON-serialisable position of a feed (kept in a sensor cursor or in memory)."""

    ids: dict[str, int] = field(default_factory=dict)  # event type -> last storage id (global storages)
    # Global storages: ids below which every record was read (a record commits after others with higher ids
    # were already read: `_read_global`), and the ids read above it with the time they were first read.
    settled: dict[str, int] = field(default_factory=dict)
    recent: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    run_updated_after: float | None = None  # sharded storage: update timestamp already read up to
    runs: dict[str, str] = field(default_factory=dict)  # sharded storage: run id -> Dagster's per-run cursor

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "run_updated_after": self.run_updated_after, "runs": self.runs,
                "settled": self.settled, "recent": {k: [list(r) for r in v] for k, v in self.recent.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FeedCursor:
        data = data or {}
        recent = {k: [(int(i), float(t)) for i, t in v] for k, v in (data.get("recent") or {}).items()}
        return cls(ids=dict(data.get("ids") or {}), run_updated_after=data.get("run_updated_after"),
                   runs=dict(data.get("runs") or {}), settled=dict(data.get("settled") or {}), recent=recent)


ALL = "*"  # the cursor key of a feed that reads every event (log lines carry no event type)


def read_new(instance: dg.DagsterInstance, event_types: list[DagsterEventType] | None, cursor: FeedCursor,
             limit: int = 1000) -> list[dg.EventLogRecord]:
    """Records of `event_types` (None: every record, plain log lines too) after `cursor` (advanced in place),
    oldest first, at most about `limit`."""
    storage = instance.event_log_storage
    if not storage.is_run_sharded:
        if event_types is None:
            return _read_global(storage, ALL, None, lambda after: _all_records(storage, after, limit), cursor)
        out: list[dg.EventLogRecord] = []
        for event_type in event_types:

            def typed(after: int, event_type: DagsterEventType = event_type) -> list[dg.EventLogRecord]:
                return list(storage.get_event_records(
                    EventRecordsFilter(event_type=event_type, after_cursor=after), limit=limit, ascending=True))

            out.extend(_read_global(storage, event_type.value, event_type.value, typed, cursor))
        return sorted(out, key=lambda r: r.timestamp)
    return _read_sharded(instance, set(event_types) if event_types is not None else None, cursor, limit)


def end_cursor(instance: dg.DagsterInstance, now: float) -> FeedCursor:
    """A cursor of an every-record feed at the end of the log now: what a live view starts from."""
    storage: Any = instance.event_log_storage
    if storage.is_run_sharded:
        cursor = FeedCursor(run_updated_after=now)
        # Runs updated just before `now` are re-read (MARGIN): read them to their end once, so the feed starts
        # after what they hold now instead of replaying them whole. Bounded: a busy run keeps writing.
        for _ in range(PRIME_READS):
            if not read_new(instance, None, cursor):
                break
        return cursor
    with storage.index_connection() as conn:
        newest = conn.execute(sa.select(sa.func.max(SqlEventLogStorageTable.c.id))).scalar()
    return FeedCursor(ids={ALL: int(newest or 0)})


def _all_records(storage: Any, after: int, limit: int) -> list[dg.EventLogRecord]:
    # Dagster's record API filters by one event type; plain log lines have none, so read the table itself.
    table = SqlEventLogStorageTable
    with storage.index_connection() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.event).where(table.c.id > after)
                            .order_by(table.c.id.asc()).limit(limit)).fetchall()
    return _records(rows)


def _records(rows: Any) -> list[dg.EventLogRecord]:
    """Rows of (id, event) of Dagster's event log table as records."""
    return [dg.EventLogRecord(storage_id=row.id, event_log_entry=deserialize_value(row.event, dg.EventLogEntry))
            for row in rows]


def _late_records(storage: Any, after: int, upto: int, event_type: str | None, known: set[int]
                  ) -> list[dg.EventLogRecord]:
    """Records in (after, upto] (of `event_type`, None: any) whose ids are not in `known`: ids first (cheap),
    then the few rows that committed late."""
    table = SqlEventLogStorageTable
    query = sa.select(table.c.id).where(table.c.id > after, table.c.id <= upto)
    if event_type is not None:
        query = query.where(table.c.dagster_event_type == event_type)
    with storage.index_connection() as conn:
        missing = [i for (i,) in conn.execute(query) if i not in known]
        if not missing:
            return []
        rows = conn.execute(sa.select(table.c.id, table.c.event).where(table.c.id.in_(missing))
                            .order_by(table.c.id.asc())).fetchall()
    return _records(rows)


def _read_global(storage: Any, key: str, event_type: str | None,
                 fetch_new: Callable[[int], list[dg.EventLogRecord]], cursor: FeedCursor) -> list[dg.EventLogRecord]:
    """New records of one feed on a global storage (PostgreSQL), late commits included.

    Storage ids come from a sequence when a row is inserted, but rows become visible when their transaction
    commits, so a record can appear after records with higher ids were read: `id > last id read` alone would
    skip it for good (an alert never sent). So the ids read above the `settled` point are kept with the time
    they were first read, and each read also looks for ids between `settled` and the last id read that it has
    not seen. Once a record was first read SETTLE_S ago, every lower id was handed out before it was written
    and has committed (or never will): `settled` moves up to it."""
    head = cursor.ids.get(key, 0)
    settled = min(cursor.settled.get(key, head), head)
    recent = dict(cursor.recent.get(key, []))
    late = _late_records(storage, settled, head, event_type, set(recent)) if head > settled else []
    new = fetch_new(head)
    now = time.time()
    for record in [*late, *new]:
        recent[record.storage_id] = now
    if new:
        cursor.ids[key] = new[-1].storage_id
    old_enough = [i for i, first in recent.items() if now - first >= SETTLE_S]
    if old_enough:
        settled = max(settled, max(old_enough))
    cursor.settled[key] = settled
    cursor.recent[key] = sorted((i, t) for i, t in recent.items() if i > settled)
    return sorted([*late, *new], key=lambda r: r.storage_id)


def _read_sharded(instance: dg.DagsterInstance, event_types: set[DagsterEventType] | None, cursor: FeedCursor,
                  limit: int) -> list[dg.EventLogRecord]:
    since = (dt.datetime.fromtimestamp(cursor.run_updated_after, dt.UTC) - MARGIN
             if cursor.run_updated_after is not None else None)
    runs = instance.get_run_records(dg.RunsFilter(updated_after=since), order_by="update_timestamp",
                                    ascending=True, limit=limit)
    out: list[dg.EventLogRecord] = []
    for run in runs:
        run_id = run.dagster_run.run_id
        connection = instance.event_log_storage.get_records_for_run(
            run_id, cursor=cursor.runs.get(run_id), of_type=event_types, limit=limit
        )
        if connection.records:
            cursor.runs[run_id] = connection.cursor
            out.extend(connection.records)
        if connection.has_more:
            # this run has more to read: stop here so the cursor never skips past it
            break
        cursor.run_updated_after = max(cursor.run_updated_after or 0.0, run.update_timestamp.timestamp())
        if len(out) >= limit:
            break
    # a finished run is never updated again: forget it once it is outside the re-read margin
    horizon = (cursor.run_updated_after or 0.0) - 2 * MARGIN.total_seconds()
    for run in runs:
        if run.dagster_run.status in FINISHED and run.update_timestamp.timestamp() < horizon:
            cursor.runs.pop(run.dagster_run.run_id, None)
    return sorted(out, key=lambda r: r.timestamp)
