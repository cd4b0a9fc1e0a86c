"""GraphQL rate limits shared by every proxy replica: one counter row per user or token in the proxy database.

The in-process token bucket (transport/ratelimit.py) smooths each replica's traffic; behind a load balancer it
would grant each replica its own budget. This adds one shared window per key: it opens at the key's first
request, counts every request on every replica, and refuses past `burst + rate * window` until it closes. One
upsert per request, so it is switched on where replicas can exist (a PostgreSQL proxy database), not for the
single process of `aggregator dev`.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from aggregator.proxy.storage.db import rate_windows


class SharedRateWindows:
    # Windows closed longer than this are deleted every PRUNE_EVERY requests (bounded table under key floods).
    PRUNE_EVERY = 2000

    def __init__(self, engine: Engine, rate_per_s: float, burst: int, window_s: float = 10.0) -> None:
        self.engine, self.window_s = engine, window_s
        self.limit = int(burst + rate_per_s * window_s)
        self._since_prune = 0
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def take(self, key: str, now: float | None = None) -> float:
        """0 if the request is within the key's window budget, else seconds until the window closes."""
        now = time.time() if now is None else now
        t = rate_windows.c
        expired = t.started_at <= now - self.window_s
        insert = self._insert(rate_windows).values(key=key, started_at=now, count=1)
        stmt = insert.on_conflict_do_update(index_elements=[t.key], set_={
            "count": sa.case((expired, 1), else_=t.count + 1),
            "started_at": sa.case((expired, now), else_=t.started_at),
        }).returning(t.count, t.started_at)
        with self.engine.begin() as conn:
            count, started = conn.execute(stmt).one()
        self._since_prune += 1
        if self._since_prune >= self.PRUNE_EVERY:
            self._since_prune = 0
            with self.engine.begin() as conn:
                conn.execute(sa.delete(rate_windows).where(t.started_at <= now - 2 * self.window_s))
        if count <= self.limit:
            return 0.0
        return max(0.001, float(started) + self.window_s - now)
