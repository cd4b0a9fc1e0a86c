"""The Redis Streams connector's kit source: a fresh stream on the local Redis, read by an ACL user with a
password (created for the kit and deleted after it); each kit row is one entry's JSON payload."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from aggregator_tests.connectors.kit import KitSource, kit_row


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    admin = redis.Redis(host="127.0.0.1", port=6379)
    key, user, password = f"kit_{secrets.token_hex(5)}", f"kit_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
    # Reads on the kit's key only: the connection's own credential, as a deployment would give it.
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=[key],
                      commands=["+xrange", "+xrevrange", "+info", "+ping", "+xgroup", "+xinfo"])

    def add_rows(ids: range) -> None:
        for start in range(ids.start, ids.stop, 10_000):
            pipe = admin.pipeline(transaction=False)
            for i in range(start, min(start + 10_000, ids.stop)):
                pipe.xadd(key, {"payload": json.dumps(kit_row(i))})
            pipe.execute()

    try:
        add_rows(range(1, rows + 1))
        config = {"host": "127.0.0.1", "port": 6379, "username": user, "password": {"env": "KIT_REDIS_PASSWORD"}}
        stream = {"type": "redis", "stream": key, "format": "json", "batch_size": 500, "max_messages": 1_000_000,
                  "metadata_columns": False}
        yield KitSource(
            config=config,
            stream=stream,
            incremental_stream=stream,
            add_rows=add_rows,
            environ={"KIT_REDIS_PASSWORD": password, "KIT_REDIS_WRONG": f"wrong-{password}"},
            secrets=[password],
            failing=[config | {"password": {"env": "KIT_REDIS_WRONG"}}, config | {"port": 1}],
        )
    finally:
        admin.delete(key)
        admin.acl_deluser(user)
        admin.close()
