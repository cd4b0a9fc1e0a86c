"""RabbitMQ queues as a source: messages acknowledged only after the load that holds them committed.

A queue cannot be replayed, so the guarantee is at-least-once from the broker, made exactly-once in the table
for messages that carry a `message_id` property: a crash between the commit and the acknowledgement makes
RabbitMQ redeliver (flagged `redelivered`) messages the committed state lists, and those are skipped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from connectors.batches import Batch, StreamInfo
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.nested import stream_infos, tracker_for
from connectors.records import TypeHints
from connectors.streams.base import Batcher, Redelivery, broker_host, decode, previous_total
from connectors.streams.config import RabbitMqStream
from connectors.strict import reject_unknown

if TYPE_CHECKING:
    import pika
    from pika.adapters.blocking_connection import BlockingChannel


class RabbitMqResource(dg.ConfigurableResource):
    """A RabbitMQ broker (AMQP 0-9-1) whose queues pipelines load."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(5672, gt=0, lt=65536, description="AMQP port (5671 for TLS).")
    virtual_host: str = Field("/", description="Virtual host.")
    username: str = Field("guest", description="User name.")
    password: str = Field("guest", description="Password, as {env: NAME} (RabbitMQ's guest/guest works only on localhost).")
    tls: bool = Field(False, description="Connect with TLS.")
    heartbeat_seconds: int = Field(
        600, ge=0, description="AMQP heartbeat; long enough to cover the final commit of a large load, which is "
        "when the connection sits idle with the run's messages unacknowledged.")
    timeout_seconds: float = Field(30.0, gt=0, description="Connect timeout.")

    _connection: Any = PrivateAttr(default=None)
    _channel: Any = PrivateAttr(default=None)
    _unacked: int | None = PrivateAttr(default=None)  # the last delivery tag of the read awaiting its commit

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    @property
    def where(self) -> str:
        return f"amqp://{self.host}:{self.port}/{self.virtual_host.lstrip('/')}"

    def _parameters(self, host: str) -> pika.ConnectionParameters:
        import ssl

        import pika

        return pika.ConnectionParameters(
            host=host, port=self.port, virtual_host=self.virtual_host,
            credentials=pika.PlainCredentials(self.username, self.password),
            ssl_options=pika.SSLOptions(ssl.create_default_context(), self.host) if self.tls else None,
            heartbeat=self.heartbeat_seconds, socket_timeout=self.timeout_seconds,
            blocked_connection_timeout=self.timeout_seconds, connection_attempts=1,
        )

    @property
    def channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            import pika

            # The checked address, even with TLS: pika verifies the certificate against `self.host` (SNI).
            host = broker_host(self.host, self.port)
            try:
                self._connection = pika.BlockingConnection(self._parameters(host))
                self._channel = self._connection.channel()
            except pika.exceptions.AMQPError as exc:
                # pika's messages name host and port, never the password.
                raise SourceReadError(f"{self.where}: cannot connect: {type(exc).__name__}: {exc}") from None
        return self._channel

    def _count(self, queue: str) -> int:
        import pika

        try:
            return int(self.channel.queue_declare(queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            raise SourceReadError(f"{self.where}: queue {queue!r}: {exc.reply_text} (declare the queue first)") from None

    def check(self) -> str:
        version = self.channel.connection._impl.server_properties.get("version", b"?")  # pika has no public getter
        return f"{self.where}: connected (RabbitMQ {version.decode() if isinstance(version, bytes) else version})"

    def discover(self, stream: RabbitMqStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        """Columns of up to 100 waiting messages, read and put back (requeued) unacknowledged."""
        if stream is None:
            raise ConnectorConfigError("a rabbitmq connection cannot list its queues; discover a stream")
        channel, records = self.channel, []
        waiting = min(self._count(stream.queue), 100)
        for _ in range(waiting):
            method, props, body = channel.basic_get(stream.queue, auto_ack=False)
            if method is None:
                break
            records.append(self._record(stream, method, props, body))
        if records:
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        batch = tracker_for(stream.nested, hints).from_records(records) if records else None
        return stream_infos(stream.queue, batch, f"{self.where} queue {stream.queue}, {waiting} message(s) sampled")

    def read(
        self,
        stream: RabbitMqStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Iterator[Batch]:
        """The messages the queue holds now (at most `max_messages`), unacknowledged until `acknowledge`."""
        target = min(self._count(stream.queue), stream.max_messages)
        if target == 0:
            return
        channel = self.channel
        # Every message of the run stays unacknowledged until the commit, so the prefetch window is the run.
        channel.basic_qos(prefetch_count=min(target, 65_535))
        redelivery = Redelivery(state)
        batcher = Batcher(hints, f"{self.where} queue {stream.queue}", stream.nested)
        total, handled, last_tag = previous_total(state), 0, None
        try:
            for method, props, body in channel.consume(stream.queue, inactivity_timeout=stream.idle_seconds):
                if method is None:
                    break  # nothing for idle_seconds: another consumer took the rest
                handled += 1
                last_tag = method.delivery_tag
                identity = props.message_id
                if not redelivery.seen(identity, bool(method.redelivered)):
                    batcher.add(self._record(stream, method, props, body))
                    redelivery.record(identity)
                    total += 1
                if len(batcher) >= stream.batch_size:
                    yield batcher.flush(None)
                if handled >= target:
                    break
        finally:
            if channel.is_open:
                channel.cancel()  # messages delivered ahead but not read go back to the queue
        self._unacked = last_tag
        # The state (this load's message ids) is complete only with the last message: one checkpoint, at the end.
        final = redelivery.state(total)
        yield batcher.flush(final) if len(batcher) else Batch(columns=(), types={}, rows=[], state=final)

    def waiting(self, stream: RabbitMqStream, state: dict[str, Any] | None, limit: int) -> int:
        """Messages ready in the queue (the message sensor's question)."""
        try:
            return min(self._count(stream.queue), limit)
        finally:
            self.close()

    def _record(self, stream: RabbitMqStream, method: Any, props: Any, body: bytes) -> dict[str, Any]:
        where = f"{self.where} queue {stream.queue} message {props.message_id or method.delivery_tag}"
        record = decode(body, stream.format, where)
        if stream.metadata_columns:
            record["_message_id"] = props.message_id
            record["_routing_key"] = method.routing_key
            record["_published_at"] = (dt.datetime.fromtimestamp(props.timestamp, dt.UTC).replace(tzinfo=None)
                                       if props.timestamp else None)
        return record

    def acknowledge(self, state: dict[str, Any] | None) -> None:
        """Acknowledge every message of the committed read (skipped redeliveries included)."""
        tag, self._unacked = self._unacked, None
        if tag is None:
            return
        import pika

        channel = self._channel  # the read's own channel: delivery tags mean nothing on another one
        try:
            if channel is None or not channel.is_open:
                raise pika.exceptions.ChannelWrongStateError("the read's channel is closed")
            channel.basic_ack(delivery_tag=tag, multiple=True)
        except pika.exceptions.AMQPError as exc:
            # The rows are committed; RabbitMQ will redeliver and the next load skips what the state lists.
            raise SourceReadError(f"{self.where}: the load committed but acknowledging its messages failed "
                                  f"({type(exc).__name__}); they are redelivered and skipped by message_id") from None

    def close(self) -> None:
        if self._connection is not None:
            try:
                if self._connection.is_open:
                    self._connection.close()
            finally:
                self._connection = self._channel = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
