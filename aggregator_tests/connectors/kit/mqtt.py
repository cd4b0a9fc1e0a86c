"""The MQTT connector's kit source: a Mosquitto broker of the kit's own on a free loopback port, with a password
file (the shared broker allows anonymous clients, so it could not show that a credential stays out of errors)
and no limit on the messages it queues for an offline session (1,000 by default). The session the connector
reads is created first, so the kit rows published after it are queued for it, as they are for a pipeline whose
first run subscribed."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator_tests.connectors.kit import KitSource, kit_row
from aggregator_tests.processes import free_port, stop_group

SESSION_EXPIRY = 3600
# Each message is a QoS 1 round trip to publish (about 0.3 ms here): the memory test compares 10,000 with
# 100,000 messages rather than 20,000 with 200,000, still ten times as many.
MEMORY_ROWS = (10_000, 100_000)


def connected_client(port: int, user: str, password: str, client_id: str, clean: bool) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)  # one round trip per 20 messages by default: minutes for 200k
    client.username_pw_set(user, password)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0 if clean else SESSION_EXPIRY
    client.connect("127.0.0.1", port, clean_start=clean, properties=properties)
    return client


def subscribe_session(port: int, user: str, password: str, client_id: str, topic_filter: str) -> None:
    """Create the session the connector resumes, subscribed with QoS 1 before anything is published."""
    session = connected_client(port, user, password, client_id, clean=False)
    subscribed = threading.Event()
    session.on_subscribe = lambda *_: subscribed.set()
    session.loop_start()
    try:
        session.subscribe(topic_filter, qos=1)
        if not subscribed.wait(30):
            raise RuntimeError("mosquitto did not acknowledge the kit's subscription")
        session.disconnect()
    finally:
        session.loop_stop()


@contextmanager
def broker(state: Path, user: str, password: str) -> Iterator[int]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run([passwd, "-c", "-b", str(state / "passwd"), user, password], check=True, capture_output=True)
    port = free_port()
    (state / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {state / 'passwd'}\n"
        "max_queued_messages 0\npersistence false\nuser root\n")
    with open(state / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen([mosquitto, "-c", str(state / "mosquitto.conf")], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen; see {state / 'mosquitto.log'}") from None
                time.sleep(0.05)
        yield port
    finally:
        stop_group(proc)


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    user, password = f"kit_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    topic, client_id = f"kit/{secrets.token_hex(5)}", f"kit-{secrets.token_hex(5)}"
    with broker(tmp_path / "mosquitto", user, password) as port:
        subscribe_session(port, user, password, client_id, f"{topic}/#")
        publisher = connected_client(port, user, password, f"{client_id}-pub", clean=True)
        publisher.loop_start()

        def add_rows(ids: range) -> None:
            for start in range(ids.start, ids.stop, 5_000):  # paho's own queue takes so many at a time
                infos = [publisher.publish(f"{topic}/rows", json.dumps(kit_row(i)), qos=1)
                         for i in range(start, min(start + 5_000, ids.stop))]
                for info in infos:
                    info.wait_for_publish(timeout=60)

        try:
            add_rows(range(1, rows + 1))
            config = {"host": "127.0.0.1", "port": port, "username": user,
                      "password": {"env": "KIT_MQTT_PASSWORD"}}
            stream = {"type": "mqtt", "topics": [f"{topic}/#"], "client_id": client_id, "batch_size": 500,
                      "idle_seconds": 1.0, "session_expiry_seconds": SESSION_EXPIRY, "metadata_columns": False}
            yield KitSource(
                config=config,
                # A run holds the ids of its messages until the commit: memory is bounded by max_messages,
                # not by what the broker queued, so the memory test reads in runs of 10,000 at every size.
                stream=stream | {"max_messages": 10_000},
                incremental_stream=stream,
                add_rows=add_rows,
                environ={"KIT_MQTT_PASSWORD": password, "KIT_MQTT_WRONG": f"wrong-{password}"},
                secrets=[password],
                failing=[config | {"password": {"env": "KIT_MQTT_WRONG"}}, config | {"port": free_port()}],
                consumed_by_reads=True,
                discovers=False,  # MQTT cannot look at messages without taking them: the error says what to do
            )
        finally:
            publisher.disconnect()
            publisher.loop_stop()
