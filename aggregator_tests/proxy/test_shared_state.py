"""The proxy's shared counters on each database they run on: windows open, count and close; claims are atomic."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from aggregator.proxy.storage.idempotency import IdempotencyKeys
from aggregator.proxy.storage.login_failures import SharedLoginFailures
from aggregator.proxy.storage.rate_windows import SharedRateWindows


def test_rate_window_counts_then_reopens(engine: Engine) -> None:
    windows = SharedRateWindows(engine, rate_per_s=0.5, burst=2, window_s=10)  # limit 2 + 5 = 7
    waits = [windows.take("token:a", now=1000.0 + i * 0.1) for i in range(8)]
    assert waits[:7] == [0.0] * 7 and 9.0 < waits[7] <= 10.0
    assert windows.take("token:b", now=1001.0) == 0.0  # keys are independent
    assert windows.take("token:a", now=1010.5) == 0.0  # the window closed: a new one opens


def test_one_claim_per_key_under_concurrency(engine: Engine) -> None:
    keys = IdempotencyKeys(engine)
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: keys.claim("ana:k1"), range(16)))
    assert sum(c.owner for c in claims) == 1
    assert keys.claim("ana:k1").run_id is None  # still launching
    keys.complete("ana:k1", "run-1")
    assert keys.claim("ana:k1").run_id == "run-1"
    keys.release("ana:k1")  # a recorded run is never given back
    assert keys.run_of("ana:k1") == "run-1"

    assert keys.claim("ana:k2").owner
    keys.release("ana:k2")  # a failed launch: the key may be used again
    assert keys.claim("ana:k2").owner
    expired = IdempotencyKeys(engine, ttl_s=0.0)
    assert expired.claim("ana:k1").owner  # past the TTL a key starts over


def test_login_failures_count_within_the_window(engine: Engine) -> None:
    failures = SharedLoginFailures(engine, window_s=60)
    pair = ("pair", "x")
    for i in range(3):
        failures.failed([pair, ("user", "ana")], now=100.0 + i)
    assert failures.counts([pair, ("user", "ana")], now=110.0) == {pair: (3, 102.0), ("user", "ana"): (3, 102.0)}
    assert failures.counts([pair], now=200.0) == {}  # idle past the window: zero
    failures.failed([pair], now=200.0)
    assert failures.counts([pair], now=201.0) == {pair: (1, 200.0)}  # starts again from one
    failures.clear(pair)
    assert failures.counts([pair], now=201.0) == {}
    assert failures.prune(now=1000.0) == 1  # the user row, idle past the window
