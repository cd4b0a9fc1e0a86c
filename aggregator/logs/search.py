"""Search run logs across runs in Dagster's event log storage, paginated and bounded.

The filters that narrow most run as SQL against the event log table (run ids, time range, a LIKE on the
serialized event for text and level), newest first by storage id; each candidate row is then decoded and
checked exactly. On Dagster's default SQLite storage events live in one file per run, so runs are searched
newest first and at most MAX_RUNS of them per page; the page cursor says where to continue."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import deserialize_value
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aggregator.pipelines.run_tags import PIPELINE_TAG

MAX_LIMIT = 500
# Runs examined per page on per-run (sharded) storage, and candidate runs for a pipeline filter.
MAX_RUNS = 2000
LEVELS: dict[str, int] = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
          "CRITICAL": logging.CRITICAL}


class LogQuery(BaseModel):
    """What to look for; every field optional, `limit` bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline: str | None = Field(default=None, description="Only runs of this pipeline.")
    run_id: str | None = Field(default=None, description="Only this run.")
    level: str | None = Field(default=None, description="Lowest level shown: DEBUG, INFO, WARNING, ERROR, CRITICAL.")
    text: str | None = Field(
        default=None, max_length=200, description="Case-insensitive substring of the message or its error."
    )
    since: dt.datetime | None = Field(default=None, description="Only events at or after this time (UTC if naive).")
    until: dt.datetime | None = Field(default=None, description="Only events before this time (UTC if naive).")
    limit: int = Field(default=50, ge=1, le=MAX_LIMIT, description="Events per page.")
    # The shape `next_cursor` has (a storage id, or `<run id>:<storage id>` on per-run storage): anything else is
    # a 400 here, not a ValueError deep in the search.
    cursor: str | None = Field(default=None, pattern=r"^([A-Za-z0-9-]{1,64}:)?[0-9]{1,18}$",
                               description="`next_cursor` of the previous page.")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.upper() not in LEVELS:
            raise ValueError(f"{value!r} is not a level; allowed: {', '.join(LEVELS)}")
        return value.upper()


@dataclass(frozen=True)
class LogLine:
    run_id: str
    storage_id: int
    timestamp: float
    level: str
    step_key: str | None
    event_type: str | None
    message: str
    job_name: str | None
    error: str | None = None

    def matches(self, level: str | None, text: str | None) -> bool:
        """At or above `level` and holding `text` (case-insensitive) in its message or error."""
        if level and _numeric_level(self.level) < LEVELS[level]:
            return False
        return not text or text.lower() in f"{self.message}\n{self.error or ''}".lower()

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "time": dt.datetime.fromtimestamp(self.timestamp, dt.UTC).isoformat()}


def _numeric_level(name: str) -> int:
    # logging names a level it does not know "Level <n>"
    number = name.removeprefix("Level ")
    return LEVELS.get(name) or (int(number) if number.isdigit() else logging.INFO)


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    next_cursor: str | None


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _like(text: str) -> str:
    # the column holds JSON: match the escaped form, and escape LIKE's own wildcards
    escaped = json.dumps(text)[1:-1]
    return "%" + escaped.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(query: LogQuery) -> list[Any]:
    table = SqlEventLogStorageTable
    clauses: list[Any] = []
    if query.since:
        clauses.append(table.c.timestamp >= _naive_utc(query.since))
    if query.until:
        clauses.append(table.c.timestamp < _naive_utc(query.until))
    if query.text:
        clauses.append(table.c.event.ilike(_like(query.text), escape="\\"))
    if query.level:
        floor = LEVELS[query.level]
        clauses.append(sa.or_(*(table.c.event.like(f'%"level": {n},%') for n in LEVELS.values() if n >= floor)))
    return clauses


def _line(storage_id: int, raw: str, query: LogQuery) -> LogLine | None:
    line = line_of(storage_id, deserialize_value(raw, dg.EventLogEntry))
    return line if line.matches(query.level, query.text) else None


def line_of(storage_id: int, entry: dg.EventLogEntry) -> LogLine:
    """The log line of one event-log entry (search pages and the live tail show the same shape)."""
    level = entry.level if isinstance(entry.level, int) else LEVELS.get(str(entry.level).upper(), logging.INFO)
    event = entry.dagster_event
    return LogLine(run_id=entry.run_id, storage_id=storage_id, timestamp=entry.timestamp,
                   level=logging.getLevelName(level), step_key=entry.step_key,
                   event_type=event.event_type.name if event else None, message=entry.message,
                   job_name=entry.job_name, error=error_text(entry))


def error_text(entry: dg.EventLogEntry) -> str | None:
    """The error a failure event carries (innermost cause: what to act on), searched along with the message."""
    info = entry.error_info
    event = entry.dagster_event
    if info is None and event is not None and event.event_type.name in ("STEP_FAILURE", "RUN_FAILURE"):
        data = event.event_specific_data
        info = getattr(data, "error", None)
    if info is None:
        return None
    while info.cause is not None:
        info = info.cause
    return f"{info.cls_name}: {info.message.strip()}" if info.cls_name else info.message.strip()


def _candidate_runs(instance: dg.DagsterInstance, query: LogQuery) -> list[str] | None:
    """Run ids to search (newest first), or None for every run (global storages only)."""
    if query.run_id:
        run = instance.get_run_by_id(query.run_id)
        if run is None or (query.pipeline and run.tags.get(PIPELINE_TAG) != query.pipeline):
            # a run outside the pipeline filter is no match (the proxy relies on this to enforce scope)
            return []
        return [query.run_id]
    if not query.pipeline and not instance.event_log_storage.is_run_sharded:
        return None
    filters = dg.RunsFilter(
        tags={PIPELINE_TAG: query.pipeline} if query.pipeline else {},
        updated_after=_naive_utc(query.since).replace(tzinfo=dt.UTC) if query.since else None,
        created_before=_naive_utc(query.until).replace(tzinfo=dt.UTC) if query.until else None,
    )
    return list(instance.get_run_ids(filters, limit=MAX_RUNS))


def search_logs(instance: dg.DagsterInstance, query: LogQuery) -> LogPage:
    """One page of matching events, newest first."""
    storage = instance.event_log_storage
    runs = _candidate_runs(instance, query)
    if not storage.is_run_sharded:
        return _search_global(storage, runs, query)
    return _search_sharded(storage, runs or [], query)


def _select(query: LogQuery, extra: list[Any], limit: int) -> Any:
    table = SqlEventLogStorageTable
    return (sa.select(table.c.id, table.c.event).where(*_where(query), *extra)
            .order_by(table.c.id.desc()).limit(limit))


def _search_global(storage: Any, runs: list[str] | None, query: LogQuery) -> LogPage:
    table = SqlEventLogStorageTable
    extra: list[Any] = []
    if runs is not None:
        if not runs:
            return LogPage([], None)
        extra.append(table.c.run_id.in_(runs))
    before = int(query.cursor) if query.cursor else None
    lines: list[LogLine] = []
    # decode in batches: the LIKE pre-filter is a superset (JSON escapes), exact checks may drop a few rows
    while len(lines) <= query.limit:
        bound = [table.c.id < before] if before is not None else []
        with storage.index_connection() as conn:
            rows = conn.execute(_select(query, extra + bound, query.limit + 1)).fetchall()
        for storage_id, raw in rows:
            before = storage_id
            if (line := _line(storage_id, raw, query)) is not None:
                lines.append(line)
                if len(lines) > query.limit:
                    break
        if len(rows) <= query.limit:
            break
    more = len(lines) > query.limit
    lines = lines[: query.limit]
    return LogPage(lines, str(lines[-1].storage_id) if more and lines else None)


def _search_sharded(storage: Any, runs: list[str], query: LogQuery) -> LogPage:
    start, before = 0, None
    if query.cursor:
        run_id, _, sid = query.cursor.rpartition(":")
        start = runs.index(run_id) if run_id in runs else len(runs)
        before = int(sid)
    table = SqlEventLogStorageTable
    lines: list[LogLine] = []
    for index in range(start, len(runs)):
        run_id = runs[index]
        while True:
            want = query.limit + 1 - len(lines)
            bound = [table.c.id < before] if before is not None else []
            with storage.run_connection(run_id) as conn:
                rows = conn.execute(_select(query, bound, want)).fetchall()
            for storage_id, raw in rows:
                before = storage_id
                if (line := _line(storage_id, raw, query)) is not None:
                    lines.append(line)
                    if len(lines) > query.limit:
                        kept = lines[: query.limit]
                        return LogPage(kept, f"{kept[-1].run_id}:{kept[-1].storage_id}")
            if len(rows) < want:
                break  # this run has nothing older that matches
        before = None
    return LogPage(lines, None)
