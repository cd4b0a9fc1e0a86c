"""The login throttle's policy: per (user, source) progressive delay, account-wide slowdown, never a lockout."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from aggregator.proxy.identity.login_throttle import LoginThrottle
from aggregator.proxy.policy.rbac import Role
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy, Upstream, start_proxy


def fail(throttle: LoginThrottle, user: str, source: str) -> None:
    assert throttle.admit(user, source).admitted
    throttle.finish(user, source, ok=False)


def test_distributed_guessing_of_one_account_slows_down_but_never_locks_it() -> None:
    """OWASP: guesses spread over many addresses (each under its own limits) delay every further attempt on
    the account, growing with the failures, while the account stays usable."""
    throttle = LoginThrottle(per_pair=5, per_user=20, per_source=20, max_delay_s=10)
    for i in range(20):
        fail(throttle, "ana", f"10.0.0.{i}")
    delays = []
    for i in range(20, 60):
        admission = throttle.admit("ana", f"10.0.1.{i}")
        assert admission.admitted
        delays.append(admission.delay_s)
        throttle.finish("ana", f"10.0.1.{i}", ok=False)
    assert delays[0] > 0 and delays == sorted(delays) and delays[-1] == 10
    assert throttle.admit("ana", "192.0.2.1").admitted  # the real user is delayed, not refused


def test_in_flight_attempts_count_before_they_finish() -> None:
    """Finding 5's mechanism: admission counts the attempt at once, so concurrent guesses cannot all pass."""
    throttle = LoginThrottle(per_pair=5)
    admitted = [throttle.admit("bo", "10.0.0.1").admitted for _ in range(25)]
    assert admitted.count(True) == 5


def test_a_pair_waits_progressively_and_the_right_password_clears_it() -> None:
    throttle = LoginThrottle(per_pair=3)
    for _ in range(3):
        fail(throttle, "cy", "10.0.0.1")
    first = throttle.admit("cy", "10.0.0.1")
    assert not first.admitted and first.retry_after > 0
    assert throttle.admit("cy", "10.0.0.2").admitted  # another source is not blocked
    throttle.finish("cy", "10.0.0.2", ok=True)


def test_two_replicas_count_failures_together(upstream: Upstream, pg_db: PgDatabase) -> None:
    """Issue 19: with two proxy replicas on one proxy database, a guesser alternating between them gets one
    budget, not one per replica; the counters live in the database, not in either process."""
    limit = 4
    replicas = [start_proxy(upstream.url, pg_db.sqlalchemy_url, login_failures_per_user=limit) for _ in range(2)]
    try:
        replicas[0].store.add_user("ana", PASSWORD, Role.viewer)

        def attempt(replica: RunningProxy, password: str) -> httpx.Response:
            with httpx.Client(timeout=120, follow_redirects=False) as c:
                return c.post(f"{replica.url}/_auth/login", data={"username": "ana", "password": password},
                              headers={"origin": replica.url})

        for i in range(limit):  # two failures on each replica: neither alone reaches the limit
            assert attempt(replicas[i % 2], f"wrong {i}").status_code == 401
        for replica in replicas:
            refused = attempt(replica, PASSWORD)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) > 0
        with SharedCounts(pg_db.sqlalchemy_url) as counts:
            assert counts["pair"] == limit and counts["user"] == limit
    finally:
        for replica in replicas:
            replica.stop()


class SharedCounts:
    """The shared counter rows as the database holds them."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def __enter__(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT kind, failures FROM proxy_login_failures")).all()
        return {kind: failures for kind, failures in rows}

    def __exit__(self, *_: object) -> None:
        self.engine.dispose()
