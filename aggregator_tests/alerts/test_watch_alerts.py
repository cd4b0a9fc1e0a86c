"""The watch sensor: failed asset checks, stale tables and spec files that stop loading, each alerting once
and resolving once, read from the real instance's event log and the real spec directory."""

from __future__ import annotations

import time

import pytest

from aggregator_tests.alerts.conftest import Platform
from aggregator_tests.alerts.receivers import HttpReceiver
from aggregator_tests.alerts.test_run_alerts import Ticker


def hook_events(receiver: HttpReceiver) -> list[dict]:
    return [r.json() for r in receiver.requests if r.path.startswith("/hook")]


def test_failed_check_alerts_once_and_recovers(platform: Platform, http_receiver: HttpReceiver) -> None:
    """row_count (min 2) fails on a one-row load: one check alert naming asset, check and run; a second
    failing evaluation is de-duplicated; a passing one sends one recovery."""
    defs = platform.defs()
    watch = Ticker(defs, "alerts_watch_sensor", platform.instance)
    platform.write_orders(1)
    bad = platform.run(defs)
    assert bad.success  # a non-blocking check failure does not fail the run
    watch.tick()
    assert platform.run(defs).success
    watch.tick()
    events = hook_events(http_receiver)
    assert len(events) == 1
    assert events[0]["kind"] == "check_failure" and events[0]["check"] == "shop/orders:row_count"
    assert events[0]["run_id"] == bad.run_id and events[0]["severity"] == "ERROR"
    platform.write_orders(3)
    assert platform.run(defs).success
    watch.tick()
    watch.tick()
    events = hook_events(http_receiver)
    assert [e["event"] for e in events] == ["alert", "resolved"]


def test_stale_table_alerts_once(platform: Platform, http_receiver: HttpReceiver) -> None:
    """A table older than its `freshness:` alerts once per incident; a fresh load resolves it."""
    shop = platform.spec_dir / "shop.yaml"
    shop.write_text(shop.read_text().replace("freshness: 26h", "freshness: 1s"))
    defs = platform.defs()
    watch = Ticker(defs, "alerts_watch_sensor", platform.instance)
    assert platform.run(defs).success
    stale: list[dict] = []
    while not stale:  # follows progress: the table turns stale one second after its load
        time.sleep(0.2)
        watch.tick()
        stale = [e for e in hook_events(http_receiver) if e["kind"] == "freshness"]
    watch.tick()
    assert len(stale) == 1 and stale[0]["subject"] == "freshness:shop/orders"
    assert "allowed 0.0h" in stale[0]["summary"]
    assert len([e for e in hook_events(http_receiver) if e["kind"] == "freshness"]) == 1


def test_spec_file_that_stops_loading_alerts_once_and_recovers(
    platform: Platform, http_receiver: HttpReceiver,
) -> None:
    """A spec file broken after the code location loaded alerts once with its file:line error; fixing it
    sends one recovery."""
    defs = platform.defs()
    watch = Ticker(defs, "alerts_watch_sensor", platform.instance)
    broken = platform.spec_dir / "broken.yaml"
    broken.write_text("pipelines:\n  - name: Bad Name\n")
    watch.tick()
    watch.tick()
    events = [e for e in hook_events(http_receiver) if e["kind"] == "spec_error"]
    assert len(events) == 1
    assert f"{broken}:2: pipelines[0].name" in events[0]["summary"]
    broken.unlink()
    watch.tick()
    watch.tick()
    events = [e for e in hook_events(http_receiver) if e["kind"] == "spec_error"]
    assert [e["event"] for e in events] == ["alert", "resolved"]


@pytest.mark.parametrize("inside", [True, False])
def test_quiet_hours_hold_the_alert_until_they_end(
    platform: Platform, http_receiver: HttpReceiver, inside: bool,
) -> None:
    """Inside quiet hours an alert is held (recorded, not sent) and sent once they end if still open."""
    import datetime as dt

    from aggregator.alerts.message import AlertMessage
    from aggregator.alerts.router import AlertRouter
    from aggregator.pipelines.alerts_spec import QuietHours

    setup = platform.setup()
    quiet = QuietHours(start=dt.time(22), end=dt.time(7), timezone="Europe/Berlin")
    setup = type(setup)(config=setup.config.model_copy(update={"quiet_hours": quiet}),
                        pipeline_rules=setup.pipeline_rules, freshness=setup.freshness)
    clock_value = [dt.datetime(2026, 11, 26, 22, 30, tzinfo=dt.UTC) if inside
                   else dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)]
    store = platform.store()
    try:
        router = AlertRouter(setup, store, clock=lambda: clock_value[0])
        message = AlertMessage(kind="check_failure", subject="check_failure:shop/orders:row_count",
                               pipeline="shop", title="Check row_count on shop/orders failed", summary="1 row",
                               severity="ERROR")
        router.fire(message)
        assert len(hook_events(http_receiver)) == (0 if inside else 1)
        clock_value[0] = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
        router.flush_held()
        router.flush_held()
        assert len(hook_events(http_receiver)) == 1
        statuses = [r.status for r in store.history()]
        assert statuses == (["sent", "held"] if inside else ["sent"])
    finally:
        store.dispose()


def test_rule_with_unknown_channel_is_left_out_and_reported(platform: Platform) -> None:
    """In the code location a bad rule must not take the other alerts (or the pipelines) down with it: it is
    dropped and reported at file:line, as isolated spec errors are."""
    from aggregator.alerts.definitions import alert_sensors
    from aggregator.pipelines.load import load_specs

    shop = platform.spec_dir / "shop.yaml"
    shop.write_text(shop.read_text() + "    alerts:\n      rules:\n        - {when: run_failure, channels: [pager]}\n")
    sensors, errors = alert_sensors(load_specs(platform.spec_dir), platform.settings)
    assert [e.field for e in errors] == ["pipelines[0].alerts.rules[0].channels[0]"]
    assert str(errors[0]).startswith(f"{shop}:15: ")
    assert {s.name for s in sensors} == {"alerts_run_failure_sensor", "alerts_run_success_sensor",
                                                    "alerts_watch_sensor"}


def test_code_location_with_alerts_loads_as_dagster_discovers_it(
    platform: Platform, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: alert sensors were once a second `Definitions` at module scope of aggregator.definitions,
    which Dagster's module discovery (the webserver's `-m aggregator.definitions`) refuses."""
    import importlib

    from dagster._core.workspace.autodiscovery import loadable_targets_from_loaded_module

    import aggregator.definitions

    monkeypatch.setenv("AGGREGATOR_HOME", str(platform.settings.home))
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(platform.spec_dir))
    monkeypatch.setenv("AGGREGATOR_WAREHOUSE_URL", platform.settings.warehouse_url)
    # other tests reload the module with their own environment (test_definitions.load_defs)
    module = importlib.reload(aggregator.definitions)
    targets = loadable_targets_from_loaded_module(module)
    assert [t.attribute for t in targets] == ["defs"]
    names = {s.name for s in module.defs().sensors or []}
    assert {"alerts_run_failure_sensor", "alerts_run_success_sensor", "alerts_watch_sensor"} <= names


def test_a_schema_change_alerts_once_per_load(platform: Platform, http_receiver: HttpReceiver) -> None:
    """A load that adds a column (or loses one) sends one schema_change message naming every change; a load
    that changes nothing sends none. A column lost in replace mode without a key fails the run instead."""
    alerts = platform.spec_dir / "alerts.yaml"
    alerts.write_text(alerts.read_text().replace(
        "    - {when: freshness, channels: [hook]}", "    - {when: freshness, channels: [hook]}\n"
        "    - {when: schema_change, channels: [hook]}"))
    defs = platform.defs()
    watch = Ticker(defs, "alerts_watch_sensor", platform.instance)
    platform.write_orders(3)
    assert platform.run(defs).success  # creates the table: not a change
    watch.tick()
    platform.orders.write_text("id,amount,note\n1,1.5,a\n2,3.0,b\n")
    changed = platform.run(defs)
    assert changed.success
    watch.tick()
    assert platform.run(defs).success  # the same columns again: nothing to say
    watch.tick()
    events = [e for e in hook_events(http_receiver) if e["kind"] == "schema_change"]
    assert len(events) == 1
    assert events[0]["run_id"] == changed.run_id and events[0]["pipeline"] == "shop"
    assert events[0]["title"] == "Schema of shop/orders changed"
    assert "added column note (text)" in events[0]["summary"]

    platform.orders.write_text("id\n1\n2\n")  # amount and note gone: replace without a key cannot keep them
    failed = platform.run(defs)
    assert not failed.success
    failures = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "no longer sends column(s) amount, note" in str(failures[0].event_specific_data)
