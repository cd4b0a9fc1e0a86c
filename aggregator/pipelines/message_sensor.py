"""A pipeline's message sensor: start a run when messages wait in one of its message-stream sources.

Batching: a run starts once `min_messages` wait, or once the first waiting message was seen `max_wait_seconds`
ago; each run then loads everything that waits, up to the stream's `max_messages`. Back-pressure: while a run
of the pipeline's job is queued or in progress the sensor does not even ask the broker, so a burst of messages
becomes a bounded number of runs (about burst / max_messages, one at a time) and the queue of runs never grows
past one."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

import dagster as dg

from aggregator.pipelines.graph import Node, destination_key
from aggregator.pipelines.source_assets import state_key
from aggregator.pipelines.spec import MessageSensor, PipelineSpec
from connectors.errors import ConnectorError

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# Runs in these states hold the pipeline: the sensor waits for them (back-pressure).
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def message_sensor(pipeline: PipelineSpec, spec: MessageSensor, job: "UnresolvedAssetJobDefinition",
                   node: Node) -> dg.SensorDefinition:
    source = node.source
    dest_key = destination_key(pipeline.destination)
    key = state_key(node)

    @dg.sensor(
        name=f"{pipeline.name}_messages_sensor", job=job, minimum_interval_seconds=spec.interval_seconds,
        required_resource_keys={source.connection, dest_key},
        default_status=dg.DefaultSensorStatus.RUNNING if spec.enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"Runs {pipeline.name} when messages wait in source {source.name} "
                    f"(at least {spec.min_messages}, or any for {spec.max_wait_seconds} s; one run at a time).",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        running = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=job.name, statuses=IN_FLIGHT), limit=1)
        if running:
            return dg.SkipReason(f"back-pressure: run {running[0].dagster_run.run_id} of {job.name} is "
                                 f"{running[0].dagster_run.status.value.lower()}")
        cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        reader = getattr(context.resources, source.connection)
        destination = getattr(context.resources, dest_key)
        try:
            state = destination.read_state(key)
            waiting = int(reader.waiting(source.stream, state, spec.min_messages))
        except (ConnectorError, OSError) as exc:  # connector messages are sanitized: no secrets, no payloads
            return dg.SkipReason(f"cannot ask the broker of source {source.name}: {exc}")
        if getattr(reader, "waiting_counts_arrivals", False):
            waiting += int(cursor.get("arrived", 0))
        now = time.time()
        if waiting == 0:
            return dg.SensorResult(skip_reason=f"no messages wait in source {source.name}", cursor=json.dumps({}))
        since = float(cursor.get("since", now))
        if waiting < spec.min_messages and now - since < spec.max_wait_seconds:
            return dg.SensorResult(
                skip_reason=f"{waiting} message(s) wait; batching until {spec.min_messages} or "
                            f"{spec.max_wait_seconds} s after the first",
                cursor=json.dumps({"since": since, "arrived": waiting}),
            )
        # One run per committed position: a re-evaluation before the run commits never launches it twice.
        run_key = hashlib.sha256(json.dumps([key, state, since], sort_keys=True, default=str).encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=run_key, tags={"aggregator/messages_waiting": str(waiting)})],
            cursor=json.dumps({}),
        )

    return _sensor
