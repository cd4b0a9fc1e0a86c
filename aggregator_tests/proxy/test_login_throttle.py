"""The login throttle's policy: per (user, source) progressive delay, account-wide slowdown, never a lockout."""

from __future__ import annotations

from aggregator.proxy.identity.login_throttle import LoginThrottle


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
