"""MQTT (v5) as a source: a persistent session queues messages between runs; PUBACK only after the commit.

MQTT cannot replay, and its messages carry no stable id (packet ids are reused), so the guarantee is
at-least-once from the broker: a crash before the commit makes the broker resend the unacknowledged messages
(flagged DUP) to the same session. A crash between commit and PUBACK resends messages that are already in the
table; they are recognised by a hash of topic and payload against the last committed load (base.Redelivery),
which is exact as long as a payload is not repeated verbatim (carry an id or timestamp in it)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from connectors.batches import Batch, StreamInfo
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.records import TypeHints
from connectors.streams.base import (
    Batcher,
    Redelivery,
    broker_host,
    content_key,
    decode,
    previous_total,
)
from connectors.streams.config import MqttStream
from connectors.strict import reject_unknown


class MqttResource(dg.ConfigurableResource):
    """An MQTT broker (v5) whose topics pipelines load."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, gt=0, lt=65536, description="Broker port (8883 for TLS).")
    username: str = Field("", description="User name; empty for none.")
    password: str = Field("", description="Password, as {env: NAME}; empty for none.")
    tls: bool = Field(False, description="Connect with TLS.")
    keepalive_seconds: int = Field(60, ge=5, description="MQTT keepalive.")
    timeout_seconds: float = Field(30.0, gt=0, description="Connect timeout.")

    _client: Any = PrivateAttr(default=None)
    _unacked: list[int] = PrivateAttr(default_factory=list)

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    @property
    def where(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _connect(self, client_id: str, clean: bool, receive_maximum: int, inbox_size: int,
                 expiry: int = 0) -> tuple[Any, queue.Queue[Any], bool]:
        """A connected client whose messages land in a queue of `inbox_size`, and whether the broker still had
        its session."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        host = broker_host(self.host, self.port, tls=self.tls)
        # Bounded: paho's network thread reads as fast as the broker sends, up to the Receive Maximum (the
        # whole run, up to 65,535 messages), while the reader waits on the destination's writes. A full inbox
        # blocks that thread, so the backlog stays in the broker and the socket instead of this process.
        inbox: queue.Queue[Any] = queue.Queue(maxsize=inbox_size)
        inbox_closed = threading.Event()
        connected = threading.Event()
        outcome: dict[str, Any] = {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        if self.tls:
            client.tls_set()

        def on_connect(_c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
            outcome.update(reason=reason, session=bool(flags.session_present))
            connected.set()

        client.on_connect = on_connect
        # Set once DISCONNECT is written, i.e. after every PUBACK queued before it (see `_leave`).
        client.user_data_set({"disconnected": threading.Event(), "inbox_closed": inbox_closed})
        client.on_disconnect = lambda _c, userdata, *_: userdata["disconnected"].set()

        def on_message(_c: Any, _u: Any, message: Any) -> None:
            # Once the reader wants no more (`_stop_taking`), drop instead of blocking: the network thread must
            # go on to answer pings and flush the PUBACKs. A dropped message is unacknowledged, so the broker
            # sends it again to the next run.
            while not inbox_closed.is_set():
                try:
                    inbox.put(message, timeout=0.1)
                    return
                except queue.Full:
                    continue

        client.on_message = on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0 if clean else expiry
        # Every message of a run stays unacknowledged until the commit: let the broker send that many.
        properties.ReceiveMaximum = receive_maximum
        try:
            client.connect(host, self.port, keepalive=self.keepalive_seconds, clean_start=clean,
                           properties=properties)
        except OSError as exc:
            raise SourceReadError(f"{self.where}: cannot connect: {exc.strerror or type(exc).__name__}") from None
        client.loop_start()
        if not connected.wait(self.timeout_seconds) or outcome["reason"].is_failure:
            self._leave(client)
            raise SourceReadError(f"{self.where}: the broker refused the connection: {outcome.get('reason', 'timeout')}")
        return client, inbox, outcome["session"]

    @staticmethod
    def _stop_taking(client: Any) -> None:
        client.user_data_get()["inbox_closed"].set()

    def _leave(self, client: Any) -> None:
        """Disconnect once everything queued before (PUBACKs) is written: stopping paho's network thread
        right after `disconnect()` would drop them, and the broker would resend acknowledged messages."""
        self._stop_taking(client)
        deadline = time.monotonic() + self.timeout_seconds
        while client._out_packet and time.monotonic() < deadline:  # paho has no public "flushed" signal
            time.sleep(0.005)
        client.disconnect()
        client.user_data_get()["disconnected"].wait(self.timeout_seconds)
        client.loop_stop()

    def check(self) -> str:
        import uuid

        client, _, _ = self._connect(f"aggregator-check-{uuid.uuid4().hex[:8]}", clean=True, receive_maximum=1,
                                     inbox_size=1)
        self._leave(client)
        return f"{self.where}: connected (MQTT v5)"

    def discover(self, stream: MqttStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        raise ConnectorConfigError("MQTT cannot show messages without consuming them; declare the source's "
                                   "`columns:` types, or run it once and look at the table")

    def read(
        self,
        stream: MqttStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Iterator[Batch]:
        """Messages the session holds and any that arrive until none has for `idle_seconds` (at most
        `max_messages`), unacknowledged until `acknowledge`; the state is written with the last batch."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self.close()
        client, inbox, session = self._connect(stream.client_id, clean=False,
                                               receive_maximum=min(stream.max_messages, 65_535),
                                               inbox_size=stream.batch_size, expiry=stream.session_expiry_seconds)
        self._client = client
        if not session:
            # A new session: subscribe (retained messages only for a subscription that did not exist).
            options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            client.subscribe([(topic, options) for topic in stream.topics])
        redelivery = Redelivery(state)
        batcher = Batcher(hints, f"{self.where} {','.join(stream.topics)}", stream.nested)
        total, handled = previous_total(state), 0
        while handled < stream.max_messages:
            try:
                message = inbox.get(timeout=stream.idle_seconds)
            except queue.Empty:
                break
            identity = content_key(message.topic, message.payload)
            if redelivery.seen(identity, bool(message.dup)):
                # Already in the table (the last load committed it; its PUBACK was lost or, with Mosquitto,
                # not honoured): acknowledge it now. Held until the commit, such resends would fill the
                # session's receive window and this run's `max_messages`, and each cost a run that loads
                # almost nothing (issue 22: 6 runs instead of 3 for a burst, under load).
                client.ack(message.mid, 1)
                continue
            handled += 1
            self._unacked.append(message.mid)
            record = decode(message.payload, stream.format, f"{self.where} topic {message.topic}")
            if stream.metadata_columns:
                record["_topic"] = message.topic
            batcher.add(record)
            redelivery.record(identity)
            total += 1
            if len(batcher) >= stream.batch_size:
                yield batcher.flush(None)
        self._stop_taking(client)  # until `acknowledge` after the commit, which may take a while
        final = {**redelivery.state(total), "more": handled >= stream.max_messages}
        yield batcher.flush(final) if len(batcher) else Batch(columns=(), types={}, rows=[], state=final)

    # `waiting` counts arrivals since it was last asked, not what waits: the sensor adds them up.
    waiting_counts_arrivals: ClassVar[bool] = True

    def waiting(self, stream: MqttStream, state: dict[str, Any] | None, limit: int) -> int:
        """Messages that arrived since the last call, seen through a watch session of its own
        (`<client_id>.sensor`, same topics): MQTT cannot look into the load's session without taking its
        messages. Each is acknowledged at once; only the count matters. A last load that stopped at
        `max_messages` left messages behind: at least `limit` then, so the next run starts at once."""
        from paho.mqtt.subscribeoptions import SubscribeOptions

        client, inbox, session = self._connect(f"{stream.client_id}.sensor", clean=False, receive_maximum=65_535,
                                               inbox_size=stream.batch_size, expiry=stream.session_expiry_seconds)
        try:
            if not session:
                options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
                client.subscribe([(topic, options) for topic in stream.topics])
            arrived = 0
            while True:
                try:
                    message = inbox.get(timeout=min(stream.idle_seconds, 0.5))
                except queue.Empty:
                    return max(arrived, limit) if (state or {}).get("more") else arrived
                client.ack(message.mid, 1)
                arrived += 1
        finally:
            self._leave(client)

    def acknowledge(self, state: dict[str, Any] | None) -> None:
        """PUBACK every message of the committed read, then leave the session (the broker keeps it)."""
        client, mids, self._unacked = self._client, self._unacked, []
        if client is None:
            return
        for mid in mids:
            client.ack(mid, 1)
        self.close()  # DISCONNECT is queued after the PUBACKs, so they reach the broker first

    def close(self) -> None:
        client, self._client = self._client, None
        self._unacked = []
        if client is not None:
            self._leave(client)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
