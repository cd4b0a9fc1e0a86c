"""The NATS JetStream connector's kit source: a fresh stream on the local server (which requires no
authentication; the kit still gives the connection a password, which no error may show); each kit row is one
message's JSON payload, published on core NATS and stored by the stream."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator_tests.connectors.kit import KitSource, kit_row


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    import nats

    name, password = f"kit_{secrets.token_hex(5)}", f"pw-{secrets.token_hex(12)}"
    loop = asyncio.new_event_loop()
    nc = loop.run_until_complete(nats.connect("nats://127.0.0.1:4222"))
    js = nc.jetstream()
    loop.run_until_complete(js.add_stream(name=name, subjects=[f"{name}.>"]))

    def add_rows(ids: range) -> None:
        async def publish() -> None:
            for i in ids:
                await nc.publish(f"{name}.rows", json.dumps(kit_row(i)).encode())
            await nc.flush()
            # Stored once the stream holds the last id: core publishes are not acknowledged one by one.
            while (await js.stream_info(name)).state.last_seq < ids.stop - 1:
                await asyncio.sleep(0.05)

        loop.run_until_complete(publish())

    try:
        add_rows(range(1, rows + 1))
        config = {"servers": ["nats://127.0.0.1:4222"], "user": "kit", "password": {"env": "KIT_NATS_PASSWORD"}}
        stream = {"type": "nats", "stream": name, "batch_size": 500, "max_messages": 1_000_000,
                  "metadata_columns": False}
        yield KitSource(
            config=config,
            stream=stream,
            incremental_stream=stream,
            add_rows=add_rows,
            environ={"KIT_NATS_PASSWORD": password},
            secrets=[password],
            failing=[config | {"servers": ["nats://127.0.0.1:1"]}],
        )
    finally:
        try:
            loop.run_until_complete(js.delete_stream(name))
            loop.run_until_complete(nc.close())
        finally:
            loop.close()
