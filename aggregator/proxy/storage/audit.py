"""Audit records: every authentication event and every mutation, allowed or denied."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from aggregator.proxy.storage import db

log = logging.getLogger(__name__)


class AuditRecord(BaseModel):
    """One audit row, as stored and as served by the JSON endpoint."""

    ts: float = Field(default_factory=time.time, description="Unix time of the decision.")
    event: str = Field(description="login, login_failed, logout, token, mutation, write, websocket, ...")
    username: str | None = None
    role: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    operation: str | None = Field(default=None, description="e.g. `mutation:launchRun` or `POST /report_asset_...`")
    targets: dict[str, list[str]] = Field(default_factory=dict, description="jobs, schedules, sensors, assets, runs")
    decision: str = Field(description="allow or deny")
    reason: str | None = None
    run_id: str | None = Field(default=None, description="For launches: the run id Dagster returned.")


class AuditQuery(BaseModel):
    """Filters of `aggregator audit` and GET /_auth/api/audit."""

    username: str | None = None
    event: str | None = None
    decision: str | None = None
    operation: str | None = Field(default=None, description="substring of the operation")
    since: float | None = None
    until: float | None = None
    limit: int = Field(100, gt=0, le=10_000)


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, rec: AuditRecord) -> None:
        row = rec.model_dump()
        row["targets"] = json.dumps(rec.targets, sort_keys=True) if rec.targets else None
        with self.engine.begin() as conn:
            conn.execute(db.audit.insert().values(**row))

    def query(self, q: AuditQuery) -> list[AuditRecord]:
        stmt = sa.select(db.audit).order_by(db.audit.c.ts.desc(), db.audit.c.id.desc()).limit(q.limit)
        conditions: list[Any] = []
        if q.username:
            conditions.append(db.audit.c.username == q.username)
        if q.event:
            conditions.append(db.audit.c.event == q.event)
        if q.decision:
            conditions.append(db.audit.c.decision == q.decision)
        if q.operation:
            conditions.append(db.audit.c.operation.contains(q.operation, autoescape=True))
        if q.since is not None:
            conditions.append(db.audit.c.ts >= q.since)
        if q.until is not None:
            conditions.append(db.audit.c.ts <= q.until)
        if conditions:
            stmt = stmt.where(*conditions)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for r in rows:
            data = {k: v for k, v in r.items() if k != "id"}
            data["targets"] = json.loads(data["targets"]) if data["targets"] else {}
            out.append(AuditRecord(**data))
        return out
