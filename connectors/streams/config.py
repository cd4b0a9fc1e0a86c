"""What a message stream reads, one model per broker (the `stream:` of a source); the resources that read
them are in the broker modules beside this one, imported only when a run needs them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connectors.streams.base import MessageStream


class RedisStream(MessageStream):
    """Entries of one Redis stream (a key written with XADD), read in ID order past the committed ID."""

    type: Literal["redis"] = "redis"
    stream: str = Field(min_length=1, description="The stream's key.")
    format: Literal["fields", "json", "text"] = Field(  # type: ignore[assignment]
        "fields",
        description="`fields`: each entry's field/value pairs become columns (values as text; declare "
        "`columns:` types to convert); `json`/`text`: the value of `payload_field` is a JSON object or text.",
    )
    payload_field: str = Field("payload", description="With format json or text: the entry field holding the payload.")
    start_id: str = Field(
        "0",
        pattern=r"^(0|\$|\d+(-\d+)?)$",
        description="Where the first run starts: `0` every entry in the stream, `$` only entries added after "
        "the first run, or an entry ID (the run starts after it). Later runs start after the committed ID.",
    )
    group: str | None = Field(
        None,
        description="A consumer group moved to the committed ID after each load (created if missing), so "
        "`XINFO GROUPS` shows the pipeline's lag and `XTRIM MINID` can drop what is loaded. Reading never "
        "depends on it: the committed ID in the warehouse is the position.",
    )


class AcknowledgedStream(MessageStream):
    """A broker that holds each message of a run unacknowledged until the load's commit: the run is at most the
    window the protocol lets a client hold (AMQP's prefetch count, MQTT's Receive Maximum), 65,535 messages.
    A larger `max_messages` would be accepted and not honoured: the run would stop at the window."""

    max_messages: int = Field(
        65_535, gt=0, le=65_535,
        description="At most this many messages per run; the rest wait for the next run (the message sensor starts "
        "it). Every message of a run stays unacknowledged until its commit, and the broker hands a client at most "
        "65,535 unacknowledged messages (AMQP prefetch, MQTT Receive Maximum).",
    )


class RabbitMqStream(AcknowledgedStream):
    """Messages of one RabbitMQ queue, acknowledged only after the load that holds them committed."""

    type: Literal["rabbitmq"] = "rabbitmq"
    queue: str = Field(min_length=1, description="The queue to consume (it must exist: declared by its producers).")
    idle_seconds: float = Field(
        2.0, gt=0,
        description="A run reads the messages the queue held when it started (at most `max_messages`); it "
        "stops earlier if none arrives for this long (another consumer took them).",
    )


class MqttStream(AcknowledgedStream):
    """Messages of MQTT topics (subscribed with QoS 1), queued by the broker in a persistent session between
    runs and acknowledged (PUBACK) only after the load that holds them committed."""

    type: Literal["mqtt"] = "mqtt"
    topics: list[str] = Field(min_length=1, description="Topic filters to subscribe to, e.g. ['sensors/+/temp'].")
    client_id: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The persistent session's client ID: the broker queues messages for it between runs. Unique "
        "per source; the session exists from the first run on (messages published before it are not queued).",
    )
    session_expiry_seconds: int = Field(
        7 * 24 * 3600, gt=0, le=4_294_967_294,
        description="How long the broker keeps the session (and its queued messages) between runs.",
    )
    idle_seconds: float = Field(
        1.0, gt=0, description="A run stops when no message arrived for this long (MQTT cannot say how many wait)."
    )


class NatsStream(MessageStream):
    """Messages of one NATS JetStream stream, read by stream sequence past the committed one."""

    type: Literal["nats"] = "nats"
    stream: str = Field(min_length=1, pattern=r"^[^.*> ]+$", description="The JetStream stream's name.")
    subject: str | None = Field(None, description="Only messages on this subject (wildcards allowed); default all.")
    start_sequence: int = Field(
        1, ge=1, description="Where the first run starts: the first stream sequence to load (later runs start "
        "after the committed sequence).",
    )
    fetch_timeout_seconds: float = Field(5.0, gt=0, description="How long one fetch of a batch may wait for the server.")
