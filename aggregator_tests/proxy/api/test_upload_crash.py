"""An upload killed at each step of its finalization, then the proxy restarted: the file arrives once, whole.

Regression for issue 20 item 6: the proxy died while the finished file was moved into place; afterwards the
status said "all bytes received, not complete", every further chunk got 409, and a hidden partial file stayed
in the sensor's directory. Here a real `aggregator proxy` process SIGKILLs itself at each named step
(`AGGREGATOR_UPLOAD_FAULT_AT`), is started again, and the file sensor (evaluated by Dagster) sees one file.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.proxy.uploads.faults import STEPS
from aggregator.settings import load_settings
from aggregator_tests.proxy.api.upload_stack import UploadStack, make_stack, upstream_app
from aggregator_tests.testapi import serve

PAYLOAD = b"id,name\n" + b"".join(f"{i},row {i}\n".encode() for i in range(20000))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[UploadStack]:
    with serve(upstream_app()) as upstream:
        stack = make_stack(tmp_path, upstream)
        try:
            yield stack
        finally:
            stack.stop()


def sensor_sees(stack: UploadStack) -> list[int]:
    """What the pipeline's file sensor requests on its first evaluation: the `new_files` of each run request."""
    settings = load_settings(stack.env)
    defs = build_definitions(load_specs(settings.pipelines_dir, uploads_root=settings.uploads_root), settings)
    sensor = defs.resolve_sensor_def("drop_files_sensor")
    with dg.instance_for_test() as instance:
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    return [int(r.tags["aggregator/new_files"]) for r in result.run_requests or []]


@pytest.mark.parametrize("step", STEPS)
def test_killed_at_each_step_of_finalization_delivers_once_whole(stack: UploadStack, step: str) -> None:
    half = len(PAYLOAD) // 2
    stack.start(AGGREGATOR_UPLOAD_FAULT_AT=step)
    assert stack.put("ann", "big.csv", PAYLOAD[:half], 0, len(PAYLOAD)).status_code == 200
    with pytest.raises(httpx.TransportError):
        stack.put("ann", "big.csv", PAYLOAD[half:], half, len(PAYLOAD))
    assert stack.proc is not None and stack.proc.wait(30) == -signal.SIGKILL
    stack.stop()

    stack.start()  # recovery runs before the first request is served
    status = stack.request("ann", "GET", "big.csv").json()
    assert status == {"filename": "big.csv", "received": len(PAYLOAD), "total": len(PAYLOAD), "complete": True}
    # The client never got an answer to its last chunk and sends it again: told it is delivered, not 409.
    retry = stack.put("ann", "big.csv", PAYLOAD[half:], half, len(PAYLOAD))
    assert retry.status_code == 200 and retry.json()["complete"] is True, retry.text
    assert sorted(p.name for p in stack.inbox.iterdir()) == ["big.csv"]  # no hidden leftovers either
    assert (stack.inbox / "big.csv").read_bytes() == PAYLOAD
    assert stack.staged() == []
    assert len(list((stack.root / ".staging" / "delivered").glob("*.json"))) == 1
    assert sensor_sees(stack) == [1]


def test_killed_mid_upload_resumes_and_a_new_chunk_is_not_refused_forever(stack: UploadStack) -> None:
    """Killed between chunks (not in finalization): the restart keeps the staged bytes and the upload resumes."""
    third = len(PAYLOAD) // 3
    stack.start()
    assert stack.put("ann", "mid.csv", PAYLOAD[:third], 0, len(PAYLOAD)).status_code == 200
    assert stack.proc is not None
    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait(30)
    stack.stop()
    stack.start()
    assert stack.request("ann", "GET", "mid.csv").json()["received"] == third
    assert stack.put("ann", "mid.csv", PAYLOAD[third:], third, len(PAYLOAD)).json()["complete"] is True
    assert (stack.inbox / "mid.csv").read_bytes() == PAYLOAD
