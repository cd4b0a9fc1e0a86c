"""Routing and history on both platform databases (SQLite file, PostgreSQL by URL): rule selection,
one alert per incident, one recovery, and quiet hours that span midnight."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.alerts.history import AlertStore, alerts_db_url
from aggregator.alerts.message import AlertMessage
from aggregator.alerts.router import AlertRouter
from aggregator.pipelines.alerts_spec import AlertRule, AlertsConfig, AlertSetup, QuietHours, WebhookChannel
from aggregator_tests.alerts.receivers import HttpReceiver


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertStore]:
    if request.param == "sqlite":
        url = alerts_db_url(tmp_path / "home", {})
        assert url == f"sqlite:///{tmp_path / 'home' / 'platform.db'}"
    else:
        url = alerts_db_url(tmp_path, {"AGGREGATOR_PLATFORM_DB_URL": request.getfixturevalue("pg_db").sqlalchemy_url})
    s = AlertStore(url)
    try:
        yield s
    finally:
        s.dispose()


def setup_for(receiver: HttpReceiver) -> AlertSetup:
    config = AlertsConfig(
        channels={"a": WebhookChannel(url=f"{receiver.base_url}/a"), "b": WebhookChannel(url=f"{receiver.base_url}/b")},
        rules=[AlertRule(when="run_failure", channels=["a"]),
               AlertRule(when="check_failure", channels=["a"], severity="ERROR"),
               AlertRule(when="run_failure", channels=["b"], pipelines=["sales"])],
    )
    own = [AlertRule(when="check_failure", channels=["b"], severity="WARN")]
    return AlertSetup(config=config, pipeline_rules={"shop": (own, True), "crm": ([], False)})


def test_rule_selection() -> None:
    from aggregator_tests.alerts.receivers import start_http_receiver

    receiver, thread = start_http_receiver()
    try:
        setup = setup_for(receiver)
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()
    assert [r.channels for r in setup.rules_for("run_failure", "sales")] == [["a"], ["b"]]
    assert [r.channels for r in setup.rules_for("run_failure", "shop")] == [["a"]]
    assert setup.rules_for("run_failure", "crm") == []  # inherit: false and no own rules
    assert [r.channels for r in setup.rules_for("check_failure", "shop", "WARN")] == [["b"]]
    assert [r.channels for r in setup.rules_for("check_failure", "shop", "ERROR")] == [["b"], ["a"]]


def test_one_alert_per_incident_and_one_recovery(store: AlertStore, http_receiver: HttpReceiver) -> None:
    router = AlertRouter(setup_for(http_receiver), store)
    failure = AlertMessage(kind="run_failure", subject="run_failure:sales", pipeline="sales", run_id="r1",
                           title="Pipeline sales failed", summary="boom")
    router.fire(failure)
    router.fire(AlertMessage(**{**failure.__dict__, "run_id": "r2"}))
    assert sorted(r.path for r in http_receiver.requests) == ["/a", "/b"]
    router.resolve(AlertMessage(kind="run_failure", subject="run_failure:sales", pipeline="sales", run_id="r3",
                                title="Pipeline sales recovered", summary="ok"))
    router.resolve(AlertMessage(kind="run_failure", subject="run_failure:sales", pipeline="sales", run_id="r4",
                                title="Pipeline sales recovered", summary="ok"))
    assert [r.json()["event"] for r in http_receiver.requests] == ["alert", "alert", "resolved", "resolved"]
    statuses = [r.status for r in reversed(store.history())]
    assert statuses == ["sent", "sent", "deduplicated", "resolved", "resolved"]
    assert store.open_incidents() == []


@pytest.mark.parametrize(("hour", "quiet"), [(21, False), (22, True), (2, True), (6, True), (7, False), (12, False)])
def test_quiet_hours_span_midnight(hour: int, quiet: bool) -> None:
    window = QuietHours(start=dt.time(22), end=dt.time(7), timezone="UTC")
    assert window.contains(dt.datetime(2026, 11, 26, hour, 30, tzinfo=dt.UTC)) is quiet
