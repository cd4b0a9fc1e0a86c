"""The message sensor on each real broker: it starts runs when messages wait, batches a burst into a bounded
number of runs, and holds back while a run of the pipeline is in flight."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from aggregator_tests.pipelines.conftest import query
from aggregator_tests.streams.brokers import Broker
from aggregator_tests.streams.conftest import SPEC

SENSOR = """    message_sensor: {source: messages, min_messages: 50, max_wait_seconds: 3600, interval_seconds: 1}
"""


def evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.resolve_sensor_def("events_messages_sensor")
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources,
                                 definitions=defs) as context:
        return sensor.evaluate_tick(context)


def run(defs: dg.Definitions, instance: dg.DagsterInstance, tags: dict[str, str] | None = None) -> None:
    defs.resolve_job_def("events_job").execute_in_process(instance=instance, raise_on_error=True, tags=tags)


def test_sensor_batches_a_burst_into_bounded_runs_with_back_pressure(
    broker: Broker, tmp_path: Path, spec_dir: Path, instance: dg.DagsterInstance,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    import json

    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    stream = {**broker.stream(), "max_messages": 200}
    text = SPEC.format(type=broker.type, config=json.dumps(broker.config()), stream=json.dumps(stream))
    (spec_dir / "events.yaml").write_text(text.replace("    sources:\n", SENSOR + "    sources:\n", 1))
    defs = compile_specs(warehouse)
    if broker.type == "mqtt":
        run(defs, instance)  # creates the load's persistent session
    cursor = None
    result = evaluate(defs, instance, cursor)  # nothing waits (and MQTT's watch session now exists)
    assert not result.run_requests and result.skip_message, result

    broker.publish(range(10))
    result = evaluate(defs, instance, cursor)
    assert not result.run_requests and "batching" in (result.skip_message or ""), result.skip_message
    cursor = result.cursor

    broker.publish(range(10, 500))  # the burst
    # Exactly 3 on every broker, under load too: MQTT resends of messages the last load committed (Mosquitto
    # resends some it was sent PUBACKs for) are acknowledged at once and count against no run's budget.
    runs, bound = 0, 3
    while True:
        result = evaluate(defs, instance, cursor)
        cursor = result.cursor
        if not result.run_requests:
            break
        [request] = result.run_requests
        # Back-pressure: with a run of the job not finished, the sensor asks nothing and requests nothing.
        held = instance.create_run_for_job(defs.resolve_job_def("events_job"), run_id=str(uuid.uuid4()),
                                           status=dg.DagsterRunStatus.NOT_STARTED)
        blocked = evaluate(defs, instance, cursor)
        assert not blocked.run_requests and "back-pressure" in (blocked.skip_message or "")
        instance.delete_run(held.run_id)
        run(defs, instance, tags=request.tags)
        runs += 1
        assert runs <= bound, f"a burst of 500 with max_messages 200 needs {bound} runs at most"
    assert runs >= 3
    ids = [r[0] for r in query(warehouse, "SELECT id FROM events_messages ORDER BY id")]
    assert ids == list(range(500))


@pytest.mark.parametrize("bad", ["nope", "none"])
def test_sensor_must_watch_a_message_stream_source(bad: str, spec_dir: Path, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from aggregator.pipelines.spec import PipelineSpec

    sources = [] if bad == "none" else [{"name": "messages", "connection": "c", "write_mode": "append",
                                          "stream": {"type": "redis", "stream": "s"}}]
    with pytest.raises(ValidationError, match="must name a source of this pipeline that reads a message stream"):
        PipelineSpec.model_validate({"name": "p", "sources": sources,
                                     "message_sensor": {"source": "other" if bad == "nope" else "messages"}})
