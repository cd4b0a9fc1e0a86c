"""The platform-database side of object-storage uploads: the rows every replica reads and the compare-and-set
updates that decide, across replicas, which request's chunk is the upload's next one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.proxy.storage.db import upload_admissions, upload_chunks, uploads, uploads_delivered


@dataclass(frozen=True)
class Row:
    """One upload in progress, as the database has it."""

    pipeline: str
    filename: str
    id: str
    user: str
    total: int
    received: int
    final_key: str
    last_at: float
    state: str  # staging | delivering
    claimed_at: float | None


@dataclass(frozen=True)
class ChunkRow:
    first: int
    size: int
    key: str


def _row(found: sa.Row[Any] | None) -> Row | None:
    if found is None:
        return None
    m = found._mapping
    return Row(m["pipeline"], m["filename"], m["id"], m["username"], int(m["total"]), int(m["received"]),
               m["final_key"], float(m["last_at"]), m["state"], m["claimed_at"])


class UploadRows:
    """Reads and atomic updates of the upload tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, pipeline: str, filename: str) -> Row | None:
        t = uploads.c
        with self.engine.connect() as conn:
            return _row(conn.execute(sa.select(uploads).where(t.pipeline == pipeline, t.filename == filename)).first())

    def by_id(self, upload_id: str) -> Row | None:
        with self.engine.connect() as conn:
            return _row(conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first())

    def all(self) -> list[Row]:
        with self.engine.connect() as conn:
            return [r for r in (_row(x) for x in conn.execute(sa.select(uploads))) if r is not None]

    @contextmanager
    def admitting(self) -> Iterator[Connection]:
        """A transaction that holds the admission lock: one replica at a time counts quotas and adds an upload."""
        with self.engine.begin() as conn:
            conn.execute(sa.update(upload_admissions).where(upload_admissions.c.id == 1)
                         .values(seq=upload_admissions.c.seq + 1))
            yield conn

    @staticmethod
    def exists(conn: Connection, pipeline: str, filename: str) -> bool:
        t = uploads.c
        return conn.execute(sa.select(t.id).where(t.pipeline == pipeline, t.filename == filename)).first() is not None

    @staticmethod
    def staged_totals(conn: Connection, user: str) -> tuple[int, int]:
        """(declared bytes of `user`'s uploads in progress, of everyone's)."""
        t = uploads.c
        mine = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.total), 0)).where(t.username == user)).scalar()
        everyone = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.total), 0))).scalar()
        return int(mine or 0), int(everyone or 0)

    @staticmethod
    def delivered_of(conn: Connection, user: str) -> list[tuple[str, str, int]]:
        """(id, key, size) of the files `user` uploaded that the ledger still counts."""
        t = uploads_delivered.c
        return [(r.id, r.final_key, int(r.size)) for r in
                conn.execute(sa.select(t.id, t.final_key, t.size).where(t.username == user))]

    @staticmethod
    def forget_delivered(conn: Connection, ids: list[str]) -> None:
        if ids:
            conn.execute(sa.delete(uploads_delivered).where(uploads_delivered.c.id.in_(ids)))

    @staticmethod
    def insert(conn: Connection, pipeline: str, filename: str, user: str, total: int, final_key: str) -> bool:
        """Start an upload; False when another request (maybe on another replica) started it first."""
        now = time.time()
        try:
            with conn.begin_nested():
                conn.execute(uploads.insert().values(
                    pipeline=pipeline, filename=filename, id=uuid.uuid4().hex, username=user, total=total,
                    received=0, final_key=final_key, started_at=now, last_at=now, state="staging", claimed_at=None))
            return True
        except sa.exc.IntegrityError:
            return False

    def accept(self, row: Row, first: int, size: int, key: str) -> Row | None:
        """Record the chunk at `first` as the upload's next one if nobody else did (compare-and-set on the
        offset); the last chunk also claims the delivery. None when this request lost the race or the upload
        was cancelled or expired meanwhile."""
        t = uploads.c
        now = time.time()
        end = first + size
        values: dict[str, object] = {"received": end, "last_at": now}
        if end == row.total:
            values.update(state="delivering", claimed_at=now)
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(uploads).where(t.id == row.id, t.received == first, t.state == "staging")
                                .values(**values)).rowcount
            if not done:
                return None
            conn.execute(upload_chunks.insert().values(upload_id=row.id, first=first, size=size, key=key))
            return _row(conn.execute(sa.select(uploads).where(t.id == row.id)).first())

    def chunks(self, upload_id: str) -> list[ChunkRow]:
        c = upload_chunks.c
        with self.engine.connect() as conn:
            return [ChunkRow(int(r.first), int(r.size), r.key) for r in
                    conn.execute(sa.select(c.first, c.size, c.key).where(c.upload_id == upload_id).order_by(c.first))]

    def claim(self, row: Row, stale_before: float) -> Row | None:
        """Take over a delivery whose deliverer stopped renewing its claim (or a whole upload without one)."""
        t = uploads.c
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(uploads).where(
                t.id == row.id, t.received == t.total,
                sa.or_(t.state == "staging", t.claimed_at.is_(None), t.claimed_at < stale_before),
                t.claimed_at.is_(None) if row.claimed_at is None else t.claimed_at == row.claimed_at,
            ).values(state="delivering", claimed_at=now)).rowcount
            return _row(conn.execute(sa.select(uploads).where(t.id == row.id)).first()) if done else None

    def renew(self, row: Row) -> Row | None:
        """Keep a delivery's claim fresh; None when another replica took it over."""
        t = uploads.c
        now = time.time()
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(uploads).where(t.id == row.id, t.claimed_at == row.claimed_at)
                                .values(claimed_at=now)).rowcount
        return Row(**{**row.__dict__, "claimed_at": now}) if done else None

    def delivered(self, row: Row) -> bool:
        """The file is at its final key: the upload leaves the table for the ledger (once)."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(uploads).where(uploads.c.id == row.id)).rowcount
            conn.execute(sa.delete(upload_chunks).where(upload_chunks.c.upload_id == row.id))
            if done:
                conn.execute(uploads_delivered.insert().values(id=row.id, username=row.user, final_key=row.final_key,
                                                               size=row.total, delivered_at=time.time()))
            return bool(done)

    def remove(self, row: Row, **where: object) -> bool:
        """Drop an upload (cancel, expiry, rollback) if it is still as `where` says; its chunk rows go too."""
        t = uploads.c
        conditions = [t.id == row.id, *(getattr(t, k) == v for k, v in where.items())]
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(uploads).where(*conditions)).rowcount
            if done:
                conn.execute(sa.delete(upload_chunks).where(upload_chunks.c.upload_id == row.id))
            return bool(done)

    def known_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r.id for r in conn.execute(sa.select(uploads.c.id))}
