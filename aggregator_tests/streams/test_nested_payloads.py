"""Nested JSON message payloads (Redis Streams on 127.0.0.1:6379) nest through the same function as REST
records and JSON files: parent + child tables that rebuild the payloads, and discovery lists what the load makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator_tests.nested_docs import rebuild
from aggregator_tests.streams.brokers import RedisBroker
from connectors.streams.config import RedisStream
from connectors.streams.redis import RedisStreamsResource

PAYLOADS = [{"id": i, "device": {"kind": "meter", "site": {"code": f"s{i % 3}"}},
             "readings": [{"at": k, "kwh": k * 0.5 + i} for k in range(i % 3 + 1)], "labels": ["a", "b"][: i % 2 + 1]}
            for i in range(1, 9)]


@pytest.fixture
def redis_stream() -> Iterator[RedisBroker]:
    broker = RedisBroker()
    try:
        for doc in PAYLOADS:
            broker.client.xadd(broker.name, {"payload": json.dumps(doc)})
        yield broker
    finally:
        broker.close()


def test_nested_payloads_round_trip(redis_stream: RedisBroker, warehouse_url: str) -> None:
    stream = RedisStream.model_validate({"stream": redis_stream.name, "format": "json", "batch_size": 3,
                                         "metadata_columns": False, "nested": {}})
    resource = RedisStreamsResource()
    dest = SqlDestination(url=warehouse_url)
    infos = resource.discover(stream)
    result = dest.load("ev_readings", resource.read(stream), "append")
    assert result.rows_written == len(PAYLOADS)
    assert result.child_tables == {"ev_readings__labels": 12, "ev_readings__readings": 17}
    with dest.engine.connect() as conn:
        docs: list[dict[str, Any]] = rebuild(conn, "ev_readings")
    assert sorted(docs, key=lambda d: d["id"]) == PAYLOADS
    inspector = sa.inspect(dest.engine)
    assert {i.name.replace(redis_stream.name, "ev_readings"): list(i.columns) for i in infos} == {
        t: [c["name"] for c in inspector.get_columns(t)] for t in ("ev_readings", "ev_readings__labels",
                                                                    "ev_readings__readings")}
