"""Alert history and open incidents in the platform database (SQLite under AGGREGATOR_HOME or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.redact import sanitize_url

metadata = sa.MetaData()

history_table = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    # sent | failed | deduplicated | resolved | held (quiet hours)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(128), nullable=True),
    sa.Column("pipeline", sa.String(128), nullable=True, index=True),
    sa.Column("subject", sa.String(512), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
)

# One row per open incident: the de-duplication key. Deleted (and a recovery sent) when it resolves.
incident_table = sa.Table(
    "alert_incidents",
    metadata,
    sa.Column("subject", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("pipeline", sa.String(128), nullable=True),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("notified", sa.Boolean, nullable=False),
    sa.Column("alert", sa.Text, nullable=False),
)


def alerts_db_url(home: Path, environ: dict[str, str] | None = None) -> str:
    """AGGREGATOR_PLATFORM_DB_URL, else a SQLite file under AGGREGATOR_HOME."""
    env = os.environ if environ is None else environ
    return env.get("AGGREGATOR_PLATFORM_DB_URL") or f"sqlite:///{home / 'platform.db'}"


@dataclass(frozen=True)
class HistoryRow:
    id: int
    at: dt.datetime
    status: str
    kind: str
    channel: str | None
    pipeline: str | None
    subject: str
    run_id: str | None
    title: str
    detail: str | None
    attempts: int


@dataclass(frozen=True)
class Incident:
    subject: str
    kind: str
    pipeline: str | None
    opened_at: dt.datetime
    notified: bool
    alert: dict[str, Any]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AlertStore:
    """History and incidents; tables are created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, future=True)
        metadata.create_all(self.engine)

    @property
    def display_url(self) -> str:
        return sanitize_url(self.url)

    def dispose(self) -> None:
        self.engine.dispose()

    def record(self, *, status: str, kind: str, subject: str, title: str, channel: str | None = None,
               pipeline: str | None = None, run_id: str | None = None, detail: str | None = None,
               attempts: int = 0) -> None:
        with self.engine.begin() as conn:
            conn.execute(history_table.insert().values(
                at=now(), status=status, kind=kind, channel=channel, pipeline=pipeline, subject=subject,
                run_id=run_id, title=title, detail=detail, attempts=attempts,
            ))

    def record_test(self, *, channel: str, title: str, subject: str, delivered: bool, attempts: int,
                    error: str | None) -> None:
        """One channel test's outcome: `sent` or `failed` with the (sanitized) delivery error."""
        self.record(status="sent" if delivered else "failed", kind="test", subject=subject, title=title,
                    channel=channel, detail=error, attempts=attempts)

    def history(self, *, limit: int = 50, pipeline: str | None = None, status: str | None = None) -> list[HistoryRow]:
        query = sa.select(history_table).order_by(history_table.c.id.desc()).limit(limit)
        if pipeline:
            query = query.where(history_table.c.pipeline == pipeline)
        if status:
            query = query.where(history_table.c.status == status)
        with self.engine.connect() as conn:
            return [HistoryRow(**row._mapping) for row in conn.execute(query)]

    def incident(self, subject: str) -> Incident | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(incident_table).where(incident_table.c.subject == subject)).first()
        if row is None:
            return None
        data = dict(row._mapping)
        data["alert"] = json.loads(data["alert"])
        return Incident(**data)

    def open_incidents(self) -> list[Incident]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(incident_table).order_by(incident_table.c.opened_at)).all()
        return [Incident(**{**dict(r._mapping), "alert": json.loads(r._mapping["alert"])}) for r in rows]

    def open_incident(self, subject: str, kind: str, pipeline: str | None, alert: dict[str, Any],
                      notified: bool) -> bool:
        """Open an incident; False when one is already open for `subject` (the alert is a duplicate)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(incident_table.insert().values(
                    subject=subject, kind=kind, pipeline=pipeline, opened_at=now(), notified=notified,
                    alert=json.dumps(alert),
                ))
        except sa.exc.IntegrityError:
            return False
        return True

    def mark_notified(self, subject: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(incident_table.update().where(incident_table.c.subject == subject).values(notified=True))

    def close_incident(self, subject: str) -> Incident | None:
        """Remove the open incident for `subject` and return it (None if there was none)."""
        found = self.incident(subject)
        if found is None:
            return None
        with self.engine.begin() as conn:
            deleted = conn.execute(incident_table.delete().where(incident_table.c.subject == subject)).rowcount
        return found if deleted else None
