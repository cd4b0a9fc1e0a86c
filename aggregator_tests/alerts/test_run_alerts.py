"""Run failure and recovery alerts through real receivers, driven by real runs and real sensor ticks."""

from __future__ import annotations

import hashlib
import hmac
import logging
from email import message_from_string

import dagster as dg
import pytest

from aggregator_tests.alerts.conftest import HOOK_SECRET, SECRETS, Platform
from aggregator_tests.alerts.receivers import HttpReceiver, SmtpReceiver


def our_logs(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured line except the test SMTP server's own protocol trace."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))


class Ticker:
    """Evaluates one sensor tick after tick, carrying its cursor like the daemon does."""

    def __init__(self, defs: dg.Definitions, name: str, instance: dg.DagsterInstance) -> None:
        self.sensor = defs.resolve_sensor_def(name)
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> None:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor


def start(defs: dg.Definitions, platform: Platform) -> tuple[Ticker, Ticker]:
    """Both run status sensors, initialised before any run (their first tick only sets the cursor)."""
    failure = Ticker(defs, "alerts_run_failure_sensor", platform.instance)
    success = Ticker(defs, "alerts_run_success_sensor", platform.instance)
    failure.tick()
    success.tick()
    return failure, success


def test_failing_run_alerts_once_per_channel_and_recovery_once(
    platform: Platform, http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing run: exactly one webhook, one Slack payload and one e-mail naming pipeline, run, step, error
    and the run's link; a second failure of the same pipeline is de-duplicated; the next success sends one
    recovery per channel."""
    caplog.set_level(logging.DEBUG)
    defs = platform.defs()
    failure, success = start(defs, platform)

    platform.orders.unlink()
    first = platform.run(defs)
    assert not first.success
    failure.tick()
    failure.tick()  # the same run is not alerted twice

    hook = http_receiver.on("/hook?token=" + SECRETS[0])
    slack = [r for r in http_receiver.requests if r.path.startswith("/services/")]
    assert len(hook) == 1 and len(slack) == 1 and len(smtp_receiver.messages) == 1
    body = hook[0].json()
    assert body["event"] == "alert" and body["kind"] == "run_failure"
    assert body["pipeline"] == "shop" and body["run_id"] == first.run_id
    assert body["step"] == "shop__orders"
    assert "orders.csv" in body["summary"]
    assert body["url"] == f"http://dagster.example:3000/runs/{first.run_id}"
    expected = hmac.new(HOOK_SECRET.encode(), hook[0].body, hashlib.sha256).hexdigest()
    assert hook[0].headers["x-aggregator-signature"] == f"sha256={expected}"
    text = slack[0].json()["text"]
    assert "Pipeline: shop" in text and first.run_id in text and "Step: shop__orders" in text
    mail = message_from_string(smtp_receiver.messages[0].content)
    assert mail["Subject"] == "[alert] Pipeline shop failed"
    assert first.run_id in mail.get_payload() and f"/runs/{first.run_id}" in mail.get_payload()
    assert smtp_receiver.messages[0].recipients == ["data-team@example.com"]
    assert smtp_receiver.logins == ["alerts"]

    second = platform.run(defs)
    assert not second.success
    failure.tick()
    assert len(http_receiver.requests) == 2 and len(smtp_receiver.messages) == 1

    platform.write_orders(3)
    fixed = platform.run(defs)
    assert fixed.success
    success.tick()
    success.tick()
    recovery = [r.json() for r in http_receiver.on(hook[0].path)][1:]
    assert [r["event"] for r in recovery] == ["resolved"] and recovery[0]["run_id"] == fixed.run_id
    assert len(smtp_receiver.messages) == 2
    assert message_from_string(smtp_receiver.messages[1].content)["Subject"].startswith("[resolved]")

    store = platform.store()
    try:
        statuses = sorted(r.status for r in store.history(limit=100))
    finally:
        store.dispose()
    assert statuses == ["deduplicated"] + ["resolved"] * 3 + ["sent"] * 3
    for secret in SECRETS:
        assert secret not in our_logs(caplog)


@pytest.mark.parametrize("down", ["answers_500", "refuses_connections"])
def test_receiver_down_is_retried_then_recorded_and_sensor_survives(
    platform: Platform, http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, down: str,
) -> None:
    """A webhook receiver that fails does not lose the alert: it is retried (attempts: 3), recorded as failed
    with the masked URL, the other channels still deliver, and the sensor tick completes."""
    caplog.set_level(logging.DEBUG)
    if down == "answers_500":
        http_receiver.status = 500
    else:
        from aggregator_tests.alerts.conftest import HOOK_TOKEN, free_port

        monkeypatch.setenv("TEST_HOOK_URL", f"http://127.0.0.1:{free_port()}/hook?token={HOOK_TOKEN}")
    defs = platform.defs()
    failure, _ = start(defs, platform)
    platform.orders.unlink()
    assert not platform.run(defs).success
    failure.tick()

    hook_calls = [r for r in http_receiver.requests if r.path.startswith("/hook")]
    assert len(hook_calls) == (3 if down == "answers_500" else 0)
    assert len(smtp_receiver.messages) == 1
    store = platform.store()
    try:
        rows = {r.channel: r for r in store.history(limit=10)}
    finally:
        store.dispose()
    assert rows["hook"].status == "failed" and rows["hook"].attempts == 3
    assert rows["mail"].status == "sent"
    assert rows["chat"].status == ("failed" if down == "answers_500" else "sent")
    assert rows["hook"].detail and "/***" in rows["hook"].detail
    for secret in SECRETS:
        assert secret not in our_logs(caplog)
        assert all(secret not in (r.detail or "") for r in rows.values())
