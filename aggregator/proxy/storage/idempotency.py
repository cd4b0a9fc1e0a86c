"""Idempotency keys claimed in the proxy database, so one key gives one run across every proxy replica.

A trigger with an `Idempotency-Key` first claims the key with an INSERT (the primary key makes the claim
atomic: of two replicas racing, exactly one inserts), launches, then records the run id on the claim. A second
request with the key finds the claim: it replays the run id, or, while the first launch is still in flight,
waits briefly for it. A launch that fails releases its claim, so the client may retry with the same key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.proxy.storage.db import idempotency_keys

# Keys are kept this long (Stripe keeps them 24 h): a retry after that launches a new run.
KEY_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Claim:
    """`owner`: this request claimed the key and must launch; otherwise `run_id` is the run launched for it
    (None while another request is still launching)."""

    owner: bool
    run_id: str | None = None


class IdempotencyKeys:
    def __init__(self, engine: Engine, ttl_s: float = KEY_TTL_S) -> None:
        self.engine, self.ttl_s = engine, ttl_s

    def claim(self, key: str, now: float | None = None) -> Claim:
        now = time.time() if now is None else now
        t = idempotency_keys.c
        with self.engine.begin() as conn:
            # An expired claim is dropped first, so its key starts over.
            conn.execute(sa.delete(idempotency_keys).where(t.key == key, t.claimed_at <= now - self.ttl_s))
            try:
                with conn.begin_nested():
                    conn.execute(idempotency_keys.insert().values(key=key, claimed_at=now, run_id=None))
                return Claim(owner=True)
            except sa.exc.IntegrityError:
                pass
            run_id = conn.execute(sa.select(t.run_id).where(t.key == key)).scalar()
        return Claim(owner=False, run_id=run_id)

    def run_of(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(idempotency_keys.c.run_id).where(idempotency_keys.c.key == key)).scalar()

    def complete(self, key: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(idempotency_keys).where(idempotency_keys.c.key == key).values(run_id=run_id))

    def release(self, key: str) -> None:
        """Give the key back after a failed launch (only while no run is recorded on it)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(idempotency_keys).where(idempotency_keys.c.key == key,
                                                           idempotency_keys.c.run_id.is_(None)))

    def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(idempotency_keys).where(
                idempotency_keys.c.claimed_at <= now - self.ttl_s)).rowcount or 0)
