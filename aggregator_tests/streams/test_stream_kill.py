"""A run worker SIGKILLed in the middle of loading messages, then a rerun: exactly the published messages, none
lost and none twice (the killed load's rows and position roll back; unacknowledged messages are redelivered)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.streams.brokers import Broker
from aggregator_tests.streams.conftest import write_spec

SCRIPT = Path(__file__).with_name("kill_stream_run.py")
ROOT = Path(__file__).resolve().parents[2]


def loaded(url: str) -> list[int]:
    return [r[0] for r in query(url, "SELECT id FROM events_messages ORDER BY id")]


@pytest.mark.slow
def test_sigkilled_run_then_rerun_loads_every_message_once(
    broker: Broker, spec_dir: Path, tmp_path: Path, warehouse_url: str, instance: dg.DagsterInstance,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    write_spec(spec_dir, broker, batch_size=20)
    if broker.type == "mqtt":
        materialize_all(compile_specs(warehouse_url), instance)  # creates the persistent session
    broker.publish(range(100))
    materialize_all(compile_specs(warehouse_url), instance)
    assert loaded(warehouse_url) == list(range(100))

    broker.publish(range(100, 300))
    victim = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(spec_dir), warehouse_url, str(tmp_path / "home")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert victim.stdin is not None and victim.stdout is not None
    try:
        for count in range(1, 5):  # four batches of 20 written inside the run's transaction
            line = victim.stdout.readline()
            while line and not line.startswith(("written", "done", "failed")):
                line = victim.stdout.readline()  # Dagster's own output
            assert line == f"written {count}\n", f"the run stopped early: {line!r}"
            if count < 4:
                victim.stdin.write("next\n")
                victim.stdin.flush()
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        victim.stdin.close()
        victim.stdout.close()
    assert victim.returncode == -signal.SIGKILL
    assert loaded(warehouse_url) == list(range(100))  # nothing of the killed run is visible

    materialize_all(compile_specs(warehouse_url), instance)
    assert loaded(warehouse_url) == list(range(300))
    materialize_all(compile_specs(warehouse_url), instance)
    assert loaded(warehouse_url) == list(range(300))
