"""The RabbitMQ connector's kit source: a fresh durable queue on the local broker, read by a user with a
password (created with rabbitmqctl for the kit and deleted after it); each kit row is one persistent
message's JSON payload."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from aggregator_tests.connectors.kit import KitSource, kit_row


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    queue, user, password = f"kit_{secrets.token_hex(5)}", f"kit_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    _ctl("add_user", user, password)
    connection = None
    try:
        _ctl("set_permissions", "-p", "/", user, f"^{queue}$", f"^{queue}$", f"^{queue}$")
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)

        def add_rows(ids: range) -> None:
            # Unconfirmed publishes (a confirm per message costs a round trip each: minutes for the memory
            # test's 200,000), then wait until the queue holds them all.
            expected = channel.queue_declare(queue, passive=True).method.message_count + len(ids)
            for i in ids:
                channel.basic_publish("", queue, json.dumps(kit_row(i)).encode(),
                                      pika.BasicProperties(message_id=f"kit-{i}", delivery_mode=2))
            while channel.queue_declare(queue, passive=True).method.message_count < expected:
                connection.sleep(0.05)

        add_rows(range(1, rows + 1))
        config = {"host": "127.0.0.1", "port": 5672, "username": user, "password": {"env": "KIT_RABBITMQ_PASSWORD"}}
        stream = {"type": "rabbitmq", "queue": queue, "batch_size": 500,
                  "idle_seconds": 1.0, "metadata_columns": False}
        yield KitSource(
            config=config,
            # A run holds the ids of its messages until the commit (for redeliveries): memory is bounded by
            # max_messages, not by the queue, so the memory test reads in runs of 10,000 at every size.
            stream=stream | {"max_messages": 10_000},
            incremental_stream=stream,
            add_rows=add_rows,
            environ={"KIT_RABBITMQ_PASSWORD": password, "KIT_RABBITMQ_WRONG": f"wrong-{password}"},
            secrets=[password],
            failing=[config | {"password": {"env": "KIT_RABBITMQ_WRONG"}}, config | {"port": 1}],
            consumed_by_reads=True,
        )
    finally:
        try:
            if connection is not None and connection.is_open:
                connection.channel().queue_delete(queue)
                connection.close()
        finally:
            _ctl("delete_user", user)
