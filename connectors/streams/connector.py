"""The message-stream connectors' declarations (see connectors/connector_type.py): one per broker.

Every message stream is incremental by the broker position (or redelivery record) it commits with the rows,
so each declares an always-on cursor: `write_mode: replace`, which would reload only the new messages into an
emptied table, is refused as for any cursor."""

from __future__ import annotations

from typing import Any

from connectors.connector_type import ConnectorType
from connectors.streams.config import MqttStream, NatsStream, RabbitMqStream, RedisStream
from connectors.streams.mqtt import MqttResource
from connectors.streams.nats import JetStreamResource
from connectors.streams.rabbitmq import RabbitMqResource
from connectors.streams.redis import RedisStreamsResource


def _position(_stream: Any) -> bool:
    return True


REDIS = ConnectorType(
    name="redis", resource=RedisStreamsResource, stream_model=RedisStream, cursor=_position,
    summary="Redis Streams, resumed by entry ID: exactly once",
)
RABBITMQ = ConnectorType(
    name="rabbitmq", resource=RabbitMqResource, stream_model=RabbitMqStream, cursor=_position,
    summary="RabbitMQ queues, acknowledged after the commit: at least once, exactly once by message_id",
)
NATS = ConnectorType(
    name="nats", resource=JetStreamResource, stream_model=NatsStream, cursor=_position,
    summary="NATS JetStream streams, resumed by stream sequence: exactly once",
)
MQTT = ConnectorType(
    name="mqtt", resource=MqttResource, stream_model=MqttStream, cursor=_position,
    summary="MQTT v5 topics in a persistent session, acknowledged after the commit: at least once",
)
CONNECTORS: tuple[ConnectorType, ...] = (REDIS, NATS, RABBITMQ, MQTT)
