"""Login throttling that cannot be turned against the real user, and a bounded pool for password hashing.

Three counters, all taken *before* the password is verified (on the event loop, so the check and the count are
one atomic step: no other coroutine runs in between):

- per (user, source): after `per_pair` failures the pair waits, doubling each further failure (progressive
  delay, OWASP authentication cheat sheet). A stranger guessing from elsewhere never blocks the real user's
  own (user, source) pair.
- per user, over all sources: distributed guessing of one account is slowed, not locked. Past `per_user`
  failures every attempt on that user waits a growing delay before verification, capped at `max_delay_s`, so
  the account keeps working for the right password.
- per source: one address cannot spray many users.

Attempts in flight count as failures until they finish, so 25 concurrent guesses against a limit of 5 verify
only 5. Password hashing (argon2id, 64 MiB, about a second) runs in `HashPool`, a small executor of its own
with a bounded queue: a flood gets 429 at once instead of occupying the threads that serve sessions, tokens
and audit writes. Failures are also counted in the proxy database (storage/login_failures.py) when the
throttle is given `shared` counts, so several replicas throttle on the same numbers; attempts in flight stay
per process. Times are wall-clock (`time.time()`): they are compared across processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
PAIR_BASE_DELAY_S = 30.0


class HashPoolBusy(Exception):
    """Every hashing slot is taken; the attempt is refused (429) without waiting."""


class HashPool:
    """`workers` threads and at most `queue` waiting attempts; more are refused immediately."""

    def __init__(self, workers: int = 2, queue: int = 4) -> None:
        self.capacity = workers + queue
        self.in_use = 0
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="proxy-hash")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self.in_use >= self.capacity:
            raise HashPoolBusy
        self.in_use += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.in_use -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Counter:
    failures: int = 0
    in_flight: int = 0
    last: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Admission:
    """The outcome of `LoginThrottle.admit`: refused for `retry_after` seconds, or admitted after `delay_s`."""

    admitted: bool
    retry_after: float = 0.0
    delay_s: float = 0.0
    reason: str = ""


class LoginThrottle:
    def __init__(self, per_pair: int = 5, per_user: int = 20, per_source: int = 20, window_s: float = 900,
                 max_delay_s: float = 10.0, max_keys: int = 100_000) -> None:
        self.per_pair, self.per_user, self.per_source = per_pair, per_user, per_source
        self.window_s, self.max_delay_s, self.max_keys = window_s, max_delay_s, max_keys
        self._pairs: dict[tuple[str, str], _Counter] = {}
        self._users: dict[str, _Counter] = {}
        self._sources: dict[str, _Counter] = {}

    def _get(self, table: dict[str, _Counter] | dict[tuple[str, str], _Counter], key: object) -> _Counter:
        now = time.time()
        counter = table.get(key)  # type: ignore[call-overload]
        if counter is None or (now - counter.last > self.window_s and counter.in_flight == 0):
            if len(table) > self.max_keys:
                # Bounded memory under a flood of names: forget idle keys only.
                for k in [k for k, c in table.items() if c.in_flight == 0]:
                    del table[k]  # type: ignore[arg-type]
            counter = _Counter()
            table[key] = counter  # type: ignore[index]
        return counter

    def _pair_wait(self, c: _Counter) -> float:
        over = c.failures + c.in_flight - self.per_pair
        if over < 0:
            return 0.0
        # 30 s after the limit, doubling per further failure, at most the window.
        return max(0.0, min(self.window_s, PAIR_BASE_DELAY_S * 2.0 ** min(over, 20)) - (time.time() - c.last))

    @staticmethod
    def shared_keys(user: str, source: str) -> dict[str, tuple[str, str]]:
        """The (kind, key) rows of the shared counters of one attempt. Keys are digests: a user name is any
        text a form carries (NUL included, which PostgreSQL text refuses) and the pair must stay unambiguous."""
        def digest(text: str) -> str:
            return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

        return {"pair": ("pair", digest(f"{source}\n{user}")), "user": ("user", digest(user)),
                "source": ("source", digest(source))}

    def admit(self, user: str, source: str,
              shared: dict[tuple[str, str], tuple[int, float]] | None = None) -> Admission:
        """Check and count one attempt before any verification (synchronous: atomic on the event loop).

        `shared`: failure counts read from the proxy database just before (every replica's failures); a
        counter takes the larger of its own and the shared count."""
        pair = self._get(self._pairs, (user, source))
        by_source = self._get(self._sources, source)
        by_user = self._get(self._users, user)
        if shared:
            keys = self.shared_keys(user, source)
            for counter, kind in ((pair, "pair"), (by_source, "source"), (by_user, "user")):
                failures, last = shared.get(keys[kind], (0, 0.0))
                if failures > counter.failures:
                    counter.failures, counter.last = failures, max(counter.last, last)
        wait = self._pair_wait(pair)
        if wait > 0:
            return Admission(False, retry_after=wait, reason="too many failed sign-ins for this user from here")
        if by_source.failures + by_source.in_flight >= self.per_source:
            return Admission(False, retry_after=max(1.0, self.window_s - (time.time() - by_source.last)),
                             reason="too many failed sign-ins from this address")
        over_user = by_user.failures + by_user.in_flight - self.per_user
        delay = 0.0 if over_user < 0 else min(self.max_delay_s, 0.25 * 2.0 ** min(over_user / 4, 10))
        for c in (pair, by_source, by_user):
            c.in_flight += 1
            c.last = time.time()
        return Admission(True, delay_s=delay)

    def finish(self, user: str, source: str, ok: bool) -> None:
        """Record the outcome of an admitted attempt."""
        now = time.time()
        for c in (self._pairs.get((user, source)), self._sources.get(source), self._users.get(user)):
            if c is None:
                continue
            c.in_flight = max(0, c.in_flight - 1)
            c.last = now
            if not ok:
                c.failures += 1
        if ok:
            # The right password from this source clears this pair; the account-wide slowdown decays by
            # itself, so a guesser elsewhere does not get a fresh budget from the real user's sign-in.
            self._pairs.pop((user, source), None)
