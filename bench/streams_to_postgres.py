"""Message streams -> PostgreSQL: this project's source (RedisStreamsResource / RabbitMqResource + SqlDestination,
default stream options, position committed with the rows) against a bare client loop of the same protocol
(redis-py XRANGE / pika consume with one ack at the end) that json-decodes each payload and COPYs the rows into
the same database. Prints messages/s of both and the ratio (goal >= 0.5).

    python bench/streams_to_postgres.py [--messages 50000] [--brokers redis,rabbitmq]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable

import common
import psycopg

os.environ.setdefault("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")  # the brokers are on loopback

from aggregator.destinations.sql import SqlDestination
from connectors.streams.config import RabbitMqStream, RedisStream
from connectors.streams.rabbitmq import RabbitMqResource
from connectors.streams.redis import RedisStreamsResource


def payload(i: int) -> bytes:
    return json.dumps({"id": i, "sku": f"SKU-{i:08d}", "price": round(i * 0.37, 2), "qty": i % 250,
                       "active": i % 3 != 0}).encode()


def copy_rows(dsn: str, table: str, batches: Callable[[], object]) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} (id bigint, sku text, price double precision, qty bigint, active boolean)")
        with conn.cursor() as cur, cur.copy(f"COPY {table} (id, sku, price, qty, active) FROM STDIN") as copy:
            for records in batches():  # type: ignore[attr-defined]
                for r in records:
                    copy.write_row((r["id"], r["sku"], r["price"], r["qty"], r["active"]))


def redis_case(dsn: str, n: int) -> tuple[float, float]:
    import redis

    client, key = redis.Redis(), f"bench_{uuid.uuid4().hex[:8]}"
    try:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(key, {"payload": payload(i)})
        pipe.execute()

        def bare_batches():  # type: ignore[no-untyped-def]
            last = "0"
            while True:
                entries = client.xrange(key, min=f"({last}", count=1000)
                if not entries:
                    return
                last = entries[-1][0].decode()
                yield [json.loads(fields[b"payload"]) for _, fields in entries]

        started = time.perf_counter()
        copy_rows(dsn, "bare_redis", bare_batches)
        bare = time.perf_counter() - started
        source, dest = RedisStreamsResource(), SqlDestination(url=dsn.replace("postgresql://", "postgresql+psycopg://", 1))
        stream = RedisStream(stream=key, format="json")
        started = time.perf_counter()
        result = dest.load("ours_redis", lambda state: source.read(stream, state=state), "append", state_key=key)
        source.acknowledge(result.state_after)
        ours = time.perf_counter() - started
        if result.rows_written != n:
            raise SystemExit(f"loaded {result.rows_written} of {n} messages")
        source.close()
        return bare, ours
    finally:
        client.delete(key)
        client.close()


def rabbitmq_case(dsn: str, n: int) -> tuple[float, float]:
    import pika

    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    queue = f"bench_{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, durable=True)
    try:
        def publish() -> None:
            for i in range(n):
                channel.basic_publish("", queue, payload(i), pika.BasicProperties(message_id=f"m-{i}"))

        publish()

        def bare_batches():  # type: ignore[no-untyped-def]
            channel.basic_qos(prefetch_count=min(n, 65_535))
            batch, seen, tag = [], 0, 0
            for method, _props, body in channel.consume(queue, inactivity_timeout=2):
                if method is None:
                    break
                batch.append(json.loads(body))
                seen, tag = seen + 1, method.delivery_tag
                if len(batch) >= 1000:
                    yield batch
                    batch = []
                if seen >= n:
                    break
            channel.cancel()
            yield batch
            channel.basic_ack(tag, multiple=True)

        started = time.perf_counter()
        copy_rows(dsn, "bare_rabbit", bare_batches)
        bare = time.perf_counter() - started
        publish()
        source, dest = RabbitMqResource(), SqlDestination(url=dsn.replace("postgresql://", "postgresql+psycopg://", 1))
        stream = RabbitMqStream(queue=queue)
        started = time.perf_counter()
        result = dest.load("ours_rabbit", lambda state: source.read(stream, state=state), "append", state_key=queue)
        source.acknowledge(result.state_after)
        ours = time.perf_counter() - started
        if result.rows_written != n:
            raise SystemExit(f"loaded {result.rows_written} of {n} messages")
        source.close()
        return bare, ours
    finally:
        channel.queue_delete(queue)
        connection.close()


CASES = {"redis": redis_case, "rabbitmq": rabbitmq_case}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    args = parser.parse_args()
    print(f"start: {common.load_note()}")
    with common.database() as dsn:
        for name in args.brokers.split(","):
            bare, ours = CASES[name](dsn, args.messages)
            ratio = bare / ours
            print(f"{name}: bare {args.messages / bare:,.0f} msg/s, ours {args.messages / ours:,.0f} msg/s, "
                  f"ratio {ratio:.2f}x (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"end: {common.load_note()}")


if __name__ == "__main__":
    main()
