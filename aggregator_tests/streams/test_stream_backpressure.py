"""A reader slower than the network does not make a stream connector hold the broker's backlog in memory.

MQTT pushes: the broker sends up to the session's Receive Maximum (a whole run, up to 65,535 messages) while the
load writes batches to the destination. Before the inbox was bounded, paho's network thread queued all of them
in the process (peak RSS grew with the run, and the conformance kit's memory test failed in CI when the reader
lagged). The class check: no stream connector hands messages between threads through an unbounded queue."""

from __future__ import annotations

import ast
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator_tests.connectors.kit.mqtt import broker, connected_client, subscribe_session
from aggregator_tests.process_env import platform_env

REPO = Path(__file__).resolve().parents[2]
MESSAGES, PAYLOAD_BYTES = 3_000, 16_000  # 48 MB of payloads: held whole, far above the allowance below

READ_SLOWLY = """
import json, os, sys, time
from aggregator.pipelines.connections import Connection, build_source
from connectors.registry import CONNECTOR_TYPES
from connectors.secrets import Resolver
config, stream = json.loads(sys.argv[1])
source = build_source(Connection.model_validate({"type": "mqtt", "config": config}), "kit", Resolver(os.environ))
stream = CONNECTOR_TYPES["mqtt"].stream_model.model_validate(stream)
def rss(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field))
before, rows = rss("VmRSS:"), 0
for batch in source.read(stream):
    rows += len(batch.rows)
    time.sleep(0.05)  # a destination write: the broker's messages keep arriving meanwhile
source.acknowledge(None)
print(json.dumps({"rows": rows, "growth_kib": rss("VmHWM:") - before}))
"""


@pytest.mark.slow
def test_a_slow_mqtt_reader_keeps_the_backlog_out_of_its_memory(tmp_path: Path) -> None:
    """3,000 messages of 16 KB, read in batches of 100 with a pause after each: peak RSS grows by far less than
    the 48 MB the broker may send ahead (it grew by about that much with the unbounded inbox)."""
    user, password = f"kit_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    topic, client_id = f"bp/{secrets.token_hex(5)}", f"bp-{secrets.token_hex(5)}"
    with broker(tmp_path / "mosquitto", user, password) as port:
        subscribe_session(port, user, password, client_id, f"{topic}/#")
        publisher = connected_client(port, user, password, f"{client_id}-pub", clean=True)
        publisher.loop_start()
        try:
            filler = "x" * PAYLOAD_BYTES
            infos = [publisher.publish(f"{topic}/rows", json.dumps({"id": i, "blob": filler}), qos=1)
                     for i in range(MESSAGES)]
            for info in infos:
                info.wait_for_publish(timeout=60)
            config = {"host": "127.0.0.1", "port": port, "username": user, "password": {"env": "BP_PASSWORD"}}
            stream = {"type": "mqtt", "topics": [f"{topic}/#"], "client_id": client_id, "batch_size": 100,
                      "idle_seconds": 1.0, "session_expiry_seconds": 3600, "max_messages": MESSAGES}
            out = subprocess.run(
                [sys.executable, "-c", READ_SLOWLY, json.dumps([config, stream])],
                env=platform_env(BP_PASSWORD=password, MALLOC_ARENA_MAX="1"), cwd=REPO,
                capture_output=True, text=True, timeout=600, check=False)
        finally:
            publisher.disconnect()
            publisher.loop_stop()
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["rows"] == MESSAGES
    growth_mib = answer["growth_kib"] / 1024
    assert growth_mib < 16, f"peak RSS grew {growth_mib:.1f} MiB while reading {MESSAGES:,} messages slowly"


def _unbounded_queues(path: Path) -> list[str]:
    """`Queue()` / `queue.Queue()` (and the asyncio and multiprocessing kinds) made without a maxsize."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            sized = node.args or any(keyword.arg == "maxsize" for keyword in node.keywords)
            if name in {"Queue", "SimpleQueue", "LifoQueue", "PriorityQueue"} and not sized:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_connector_hands_records_between_threads_through_an_unbounded_queue() -> None:
    """Every queue in connectors/ has a bound, so a producer thread cannot run ahead of the load without limit."""
    found = [hit for path in sorted((REPO / "connectors").rglob("*.py")) for hit in _unbounded_queues(path)]
    assert not found, f"unbounded queues (give each a maxsize and block or drop the producer): {found}"
