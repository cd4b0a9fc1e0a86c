"""Failed sign-ins counted in the proxy database, so every replica throttles on the same counts.

With one proxy process the in-memory counters of `LoginThrottle` would do; behind a load balancer each
replica would otherwise grant a guesser its own budget (issue 19: "the login throttle counts across both").
Rows are keyed by counter kind (`pair`, `user`, `source`) and key; a row older than the window counts as
zero and is overwritten by the next failure, so the table holds at most one row per key seen in a window.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.proxy.storage.db import login_failures

CounterKey = tuple[str, str]  # (kind, key)


class SharedLoginFailures:
    """Failure counts per (kind, key) within `window_s`, shared through the proxy database."""

    # Rows idle past the window are deleted every this many recorded failures: a spray of random user names
    # must not grow the table without bound.
    PRUNE_EVERY = 500

    def __init__(self, engine: Engine, window_s: float) -> None:
        self.engine, self.window_s = engine, window_s
        self._since_prune = 0

    def counts(self, keys: Iterable[CounterKey], now: float | None = None) -> dict[CounterKey, tuple[int, float]]:
        """(failures, time of the last failure) of each key seen within the window."""
        now = time.time() if now is None else now
        keys = list(keys)
        t = login_failures.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.kind, t.key, t.failures, t.last_at).where(
                sa.tuple_(t.kind, t.key).in_(keys), t.last_at > now - self.window_s)).all()
        return {(r.kind, r.key): (int(r.failures), float(r.last_at)) for r in rows}

    def failed(self, keys: Iterable[CounterKey], now: float | None = None) -> None:
        """Count one failure on each key (a key idle past the window starts again from one)."""
        now = time.time() if now is None else now
        t = login_failures.c
        with self.engine.begin() as conn:
            for kind, key in keys:
                # UPDATE first: concurrent failures on two replicas both increment (no lost update); the INSERT
                # of a new key may race, and the loser retries the UPDATE.
                for _ in range(3):
                    fresh = sa.case((t.last_at > now - self.window_s, t.failures + 1), else_=1)
                    updated = conn.execute(sa.update(login_failures).where(t.kind == kind, t.key == key)
                                           .values(failures=fresh, last_at=now)).rowcount
                    if updated:
                        break
                    try:
                        with conn.begin_nested():
                            conn.execute(login_failures.insert().values(kind=kind, key=key, failures=1, last_at=now))
                        break
                    except sa.exc.IntegrityError:
                        continue
        self._since_prune += 1
        if self._since_prune >= self.PRUNE_EVERY:
            self._since_prune = 0
            self.prune(now)

    def clear(self, key: CounterKey) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(login_failures).where(login_failures.c.kind == key[0],
                                                         login_failures.c.key == key[1]))

    def prune(self, now: float | None = None) -> int:
        """Drop rows idle past the window (called now and then; they already count as zero)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            return int(conn.execute(sa.delete(login_failures).where(
                login_failures.c.last_at <= now - self.window_s)).rowcount or 0)
