"""The four brokers on loopback, driven by their bare clients for tests: a fresh stream/queue/topic per test,
messages `{"id": i, "name": "item i"}` published, everything removed afterwards.

There is no embedded fallback: development machines and CI run Redis (6379), NATS with JetStream (4222),
RabbitMQ (5672, guest/guest) and Mosquitto (1883), so a missing broker fails the tests instead of skipping."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import Any


def payload(i: int) -> bytes:
    return json.dumps({"id": i, "name": f"item {i}"}).encode()


class Broker:
    type: str

    def __init__(self) -> None:
        self.name = f"agg_{self.type}_{uuid.uuid4().hex[:10]}"

    def config(self) -> dict[str, Any]:
        return {}

    def stream(self) -> dict[str, Any]:
        raise NotImplementedError

    def publish(self, ids: Iterable[int]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Remove what the test created."""


class RedisBroker(Broker):
    type = "redis"

    def __init__(self) -> None:
        import redis

        super().__init__()
        self.client = redis.Redis(host="127.0.0.1", port=6379)

    def stream(self) -> dict[str, Any]:
        return {"type": "redis", "stream": self.name, "format": "json", "batch_size": 50}

    def publish(self, ids: Iterable[int]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.xadd(self.name, {"payload": payload(i)})
        pipe.execute()

    def close(self) -> None:
        self.client.delete(self.name)
        self.client.close()


class RabbitMqBroker(Broker):
    type = "rabbitmq"

    def __init__(self) -> None:
        import pika

        super().__init__()
        self.connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
        self.channel = self.connection.channel()
        self.channel.queue_declare(self.name, durable=True)

    def stream(self) -> dict[str, Any]:
        return {"type": "rabbitmq", "queue": self.name, "batch_size": 50, "idle_seconds": 2.0}

    def publish(self, ids: Iterable[int]) -> None:
        import pika

        self.channel.confirm_delivery()
        for i in ids:
            self.channel.basic_publish("", self.name, payload(i),
                                       pika.BasicProperties(message_id=f"m-{i}", delivery_mode=2))

    def close(self) -> None:
        self.channel.queue_delete(self.name)
        self.connection.close()


class NatsBroker(Broker):
    type = "nats"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._setup())

    async def _setup(self) -> None:
        import nats

        self.nc = await nats.connect("nats://127.0.0.1:4222")
        self.js = self.nc.jetstream()
        await self.js.add_stream(name=self.name, subjects=[f"{self.name}.>"])

    def stream(self) -> dict[str, Any]:
        return {"type": "nats", "stream": self.name, "batch_size": 50}

    def publish(self, ids: Iterable[int]) -> None:
        async def send() -> None:
            for i in ids:
                await self.js.publish(f"{self.name}.items", payload(i))

        self.loop.run_until_complete(send())

    def close(self) -> None:
        async def teardown() -> None:
            await self.js.delete_stream(self.name)
            await self.nc.close()

        self.loop.run_until_complete(teardown())
        self.loop.close()


class MqttBroker(Broker):
    type = "mqtt"

    def __init__(self) -> None:
        super().__init__()
        self.topic = f"{self.name}/items"

    def stream(self) -> dict[str, Any]:
        return {"type": "mqtt", "topics": [f"{self.name}/#"], "client_id": self.name, "batch_size": 50,
                "idle_seconds": 1.0}

    def publish(self, ids: Iterable[int]) -> None:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{self.name}-pub",
                             protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", 1883)
        client.loop_start()
        try:
            infos = [client.publish(self.topic, payload(i), qos=1) for i in ids]
            for info in infos:
                info.wait_for_publish(timeout=30)
        finally:
            client.disconnect()
            client.loop_stop()

    def close(self) -> None:
        import paho.mqtt.client as mqtt

        # A clean start with a zero session expiry ends the persistent session and its queued messages.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", 1883, clean_start=True)
        client.disconnect()


BROKERS: dict[str, type[Broker]] = {b.type: b for b in (RedisBroker, NatsBroker, RabbitMqBroker, MqttBroker)}
