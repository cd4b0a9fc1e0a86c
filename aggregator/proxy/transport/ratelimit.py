"""In-process rate limits: token buckets for GraphQL (login throttling is identity/login_throttle.py).

The buckets are per process (a dict look-up per request); behind several replicas `shared` (set when the proxy
database is PostgreSQL) also counts each key's requests over all replicas (storage/rate_windows.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.proxy.storage.rate_windows import SharedRateWindows


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate_per_s, burst, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self.shared: SharedRateWindows | None = None

    def take(self, key: str) -> float:
        """0 if allowed, else seconds until a request would be."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) > self.max_keys:
            self._buckets.clear()  # bounded memory beats exactness under a flood of keys
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate
