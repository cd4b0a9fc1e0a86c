"""The Dagster side of alerting: run status sensors and one watch sensor over checks, freshness and specs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.events import DagsterEventType

from aggregator.alerts.history import AlertStore, alerts_db_url
from aggregator.alerts.message import AlertMessage, summarize
from aggregator.alerts.router import AlertRouter
from aggregator.event_feed import FeedCursor, read_new
from aggregator.pipelines.alerts_spec import AlertSetup
from aggregator.pipelines.platform_assets import SPEC_ERRORS_KEY
from aggregator.pipelines.run_tags import PIPELINE_TAG
from aggregator.settings import Settings

# Check evaluations read per tick: bounded so a long outage catches up over several ticks, not one huge one.
CHECK_BATCH = 1000


def pipeline_of(run: dg.DagsterRun) -> str:
    return run.tags.get(PIPELINE_TAG) or run.job_name.removesuffix("_job")


def run_link(setup: AlertSetup, run_id: str) -> str:
    return f"{setup.config.ui_url.rstrip('/')}/runs/{run_id}"


@contextmanager
def open_router(setup: AlertSetup, settings: Settings) -> Iterator[AlertRouter]:
    store = AlertStore(alerts_db_url(settings.home))
    try:
        yield AlertRouter(setup, store)
    finally:
        store.dispose()


def failure_message(setup: AlertSetup, context: dg.RunFailureSensorContext) -> AlertMessage:
    run = context.dagster_run
    pipeline = pipeline_of(run)
    steps = context.get_step_failure_events()
    step = steps[0].step_key if steps else None
    error = None
    if steps and steps[0].step_failure_data and steps[0].step_failure_data.error:
        err = steps[0].step_failure_data.error
        # Dagster wraps user errors ("Error occurred while executing op …"); the cause is what to act on
        while err.cause is not None:
            err = err.cause
        error = err.message.strip()
    return AlertMessage(
        kind="run_failure", subject=f"run_failure:{pipeline}", pipeline=pipeline, run_id=run.run_id, step=step,
        title=f"Pipeline {pipeline} failed", summary=summarize(error or context.failure_event.message),
        url=run_link(setup, run.run_id),
    )


def build_alert_sensors(setup: AlertSetup, settings: Settings) -> list[dg.SensorDefinition]:
    """Three sensors: run failure, run success (recovery and opt-in success) and the watch sensor."""
    status = dg.DefaultSensorStatus.RUNNING if setup.enabled else dg.DefaultSensorStatus.STOPPED

    @dg.run_failure_sensor(name="alerts_run_failure_sensor", default_status=status,
                           description="Alerts on failed pipeline runs, once per incident.")
    def alerts_run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
        with open_router(setup, settings) as router:
            router.fire(failure_message(setup, context))

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="alerts_run_success_sensor",
                          default_status=status,
                          description="Sends the recovery after a failure, and success alerts where opted in.")
    def alerts_run_success_sensor(context: dg.RunStatusSensorContext) -> None:
        run = context.dagster_run
        pipeline = pipeline_of(run)
        link = run_link(setup, run.run_id)
        with open_router(setup, settings) as router:
            router.resolve(AlertMessage(
                kind="run_failure", subject=f"run_failure:{pipeline}", pipeline=pipeline, run_id=run.run_id,
                title=f"Pipeline {pipeline} recovered", summary=f"Run {run.run_id} succeeded.", url=link,
            ))
            router.fire(AlertMessage(
                kind="run_success", subject=f"run_success:{pipeline}", pipeline=pipeline, run_id=run.run_id,
                title=f"Pipeline {pipeline} succeeded", summary="", url=link,
            ))

    @dg.sensor(name="alerts_watch_sensor", default_status=status, minimum_interval_seconds=60,
               description="Alerts on failed asset checks, schema changes, stale tables and spec files that "
               "stop loading.")
    def alerts_watch_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        cursor = FeedCursor.from_json(json.loads(context.cursor) if context.cursor else None)
        with open_router(setup, settings) as router:
            watch_events(router, context.instance, cursor)
            watch_freshness(router, context.instance)
            watch_specs(router, settings)
            router.flush_held()
        context.update_cursor(json.dumps(cursor.to_json()))
        return dg.SkipReason("alerts evaluated; this sensor never launches runs")

    return [alerts_run_failure_sensor, alerts_run_success_sensor, alerts_watch_sensor]


def watch_events(router: AlertRouter, instance: dg.DagsterInstance, cursor: FeedCursor) -> None:
    """Check evaluations and materializations since `cursor`, read in one pass (the feed's cursor on
    per-run storages is shared by every event type it reads)."""
    for record in read_new(instance, [DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_MATERIALIZATION],
                           cursor, CHECK_BATCH):
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            schema_change(router, record)
        elif event.asset_check_evaluation_data is not None:
            check_evaluation(router, record)


def schema_change(router: AlertRouter, record: dg.EventLogRecord) -> None:
    """A load whose `schema_changes` metadata is not empty: one notification naming every change."""
    materialization = record.asset_materialization
    if materialization is None:
        return
    changes = materialization.metadata.get("schema_changes")
    if changes is None or not isinstance(changes.value, list) or not changes.value:
        return
    asset = materialization.asset_key.to_user_string()
    pipeline = materialization.asset_key.path[0] if len(materialization.asset_key.path) > 1 else None
    missing = materialization.metadata.get("missing_columns")
    lost = list(missing.value) if missing is not None and isinstance(missing.value, list) else []
    router.fire(AlertMessage(
        kind="schema_change", subject=f"schema_change:{asset}", pipeline=pipeline, run_id=record.run_id,
        title=f"Schema of {asset} changed" + (f": {', '.join(lost)} no longer sent" if lost else ""),
        summary=summarize("; ".join(str(c) for c in changes.value)),
        url=run_link(router.setup, record.run_id),
    ))


def check_evaluation(router: AlertRouter, record: dg.EventLogRecord) -> None:
    """A failed check opens an incident, a passing one resolves it."""
    event = record.event_log_entry.dagster_event
    if event is None or event.asset_check_evaluation_data is None:
        return
    evaluation = event.asset_check_evaluation_data
    if evaluation.asset_key == SPEC_ERRORS_KEY:
        return  # broken spec files alert per file through `spec_error` rules, not as one check
    asset = evaluation.asset_key.to_user_string()
    pipeline = evaluation.asset_key.path[0] if len(evaluation.asset_key.path) > 1 else None
    severity = evaluation.severity.value
    message = AlertMessage(
        kind="check_failure", subject=f"check_failure:{asset}:{evaluation.check_name}", pipeline=pipeline,
        run_id=record.run_id, check=f"{asset}:{evaluation.check_name}", severity=severity,
        title=f"Check {evaluation.check_name} on {asset} " + ("passes again" if evaluation.passed else "failed"),
        summary=summarize(evaluation.description or ""),
        url=run_link(router.setup, record.run_id),
    )
    if evaluation.passed:
        router.resolve(message)
    else:
        router.fire(message)


def watch_freshness(router: AlertRouter, instance: dg.DagsterInstance) -> None:
    """Tables whose last materialization is older than their declared `freshness:` (one query for all)."""
    if not router.setup.freshness:
        return
    keys = {path: dg.AssetKey(path.split("/")) for path in router.setup.freshness}
    latest = instance.get_latest_materialization_events(list(keys.values()))
    now = dt.datetime.now(dt.UTC)
    for path, (pipeline, max_age) in router.setup.freshness.items():
        entry = latest.get(keys[path])
        subject = f"freshness:{path}"
        if entry is None:
            # never loaded: nothing is stale yet; a failing first run alerts through run_failure
            continue
        loaded = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC)
        age = now - loaded
        message = AlertMessage(
            kind="freshness", subject=subject, pipeline=pipeline, run_id=entry.run_id,
            title=f"{path} is stale" if age > max_age else f"{path} is fresh again",
            summary=f"last loaded {loaded:%Y-%m-%d %H:%M} UTC, {_hours(age)} ago; allowed {_hours(max_age)}",
            url=f"{router.setup.config.ui_url.rstrip('/')}/assets/{path}",
        )
        if age > max_age:
            router.fire(message)
        else:
            router.resolve(message)


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}h"


def watch_specs(router: AlertRouter, settings: Settings) -> None:
    """Re-read the spec directory: a file that stops loading alerts once; loading again resolves it."""
    from aggregator.pipelines.isolate import load_isolated

    failing: dict[str, list[str]] = {}
    # the same loader as the code location: a file with any problem is one that dropped pipelines
    for error in load_isolated(settings.pipelines_dir, settings).errors:
        failing.setdefault(str(error.file), []).append(str(error))
    for path, problems in failing.items():
        router.fire(AlertMessage(
            kind="spec_error", subject=f"spec_error:{path}", title=f"Spec file {path} does not load",
            summary=summarize("\n".join(problems)),
        ))
    for incident in router.store.open_incidents():
        path = incident.subject.removeprefix("spec_error:")
        if incident.kind == "spec_error" and path not in failing:
            router.resolve(AlertMessage(kind="spec_error", subject=incident.subject,
                                        title=f"Spec file {path} loads again", summary=""))
