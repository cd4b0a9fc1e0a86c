"""In-process rate limits: token buckets for GraphQL (login throttling is identity/login_throttle.py).

Per process on purpose: the proxy is one process per deployment in front of one webserver. Behind several
replicas each enforces its own share, which still bounds guessing.
"""

from __future__ import annotations

import time


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate_per_s, burst, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

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
