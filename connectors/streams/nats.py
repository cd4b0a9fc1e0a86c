"""NATS JetStream as a source: messages read by stream sequence past the committed one — exactly once.

nats-py is asyncio-only; a read runs its own event loop in the calling thread (a load's thread never has one
running), so the batches still flow through the synchronous load path one at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from connectors.batches import Batch, StreamInfo
from connectors.egress import url_host
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.nested import stream_infos, tracker_for
from connectors.records import TypeHints
from connectors.redact import sanitize_url
from connectors.streams.base import Batcher, broker_host, decode
from connectors.streams.config import NatsStream
from connectors.strict import reject_unknown

T = TypeVar("T")


class JetStreamResource(dg.ConfigurableResource):
    """A NATS server with JetStream whose streams pipelines load."""

    servers: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1,
        description="Server URLs (nats:// or tls://), tried in order.",
    )
    user: str = Field("", description="User name; empty for none.")
    password: str = Field("", description="Password, as {env: NAME}; empty for none.")
    token: str = Field("", description="Authentication token, as {env: NAME}; empty for none.")
    timeout_seconds: float = Field(10.0, gt=0, description="Connect timeout.")

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    @property
    def where(self) -> str:
        return ", ".join(sanitize_url(s) for s in self.servers)

    async def _connect(self) -> Any:
        import nats

        servers = []
        for server in self.servers:
            parts = urlsplit(server if "://" in server else f"nats://{server}")
            port = parts.port or 4222
            host = broker_host(parts.hostname or "127.0.0.1", port, "servers", tls=parts.scheme == "tls")
            netloc = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
            servers.append(parts._replace(netloc=f"{netloc}{url_host(host)}:{port}").geturl())
        # Two attempts per server, a second apart, then NoServersError. nats-py treats max_reconnect_attempts=0
        # as "no limit" in its server selection: a server that refused the connection was retried forever,
        # so a check, a read or the message sensor hung while the server was down.
        options: dict[str, Any] = {"servers": servers, "connect_timeout": self.timeout_seconds,
                                   "allow_reconnect": False, "max_reconnect_attempts": 1,
                                   "reconnect_time_wait": 1.0}
        if self.user:
            options.update(user=self.user, password=self.password)
        if self.token:
            options["token"] = self.token

        async def quiet(_exc: Exception) -> None:  # nats-py logs and prints errors by default
            return None

        # A budget over all attempts as well, whatever the library does with the options above.
        budget = (2 * self.timeout_seconds + 1.0) * len(servers)
        try:
            return await asyncio.wait_for(nats.connect(**options, error_cb=quiet), budget)
        except Exception as exc:  # noqa: BLE001 - nats-py raises bare Exceptions and OSErrors alike
            why = {"NoServersError": "no server accepted the connection (each tried twice)",
                   "TimeoutError": f"no server answered within {budget:g} s"}.get(type(exc).__name__,
                                                                                 type(exc).__name__)
            raise SourceReadError(f"{self.where}: cannot connect: {why}") from None

    def _run(self, loop: asyncio.AbstractEventLoop, what: str, coro: Coroutine[Any, Any, T]) -> T:
        import nats.errors

        try:
            return loop.run_until_complete(coro)
        except nats.js.errors.NotFoundError:
            raise SourceReadError(f"{self.where}: {what}: not found (create the stream first)") from None
        except nats.errors.Error as exc:
            raise SourceReadError(f"{self.where}: {what} failed: {type(exc).__name__}: {exc}") from None

    def check(self) -> str:
        async def account() -> str:
            nc = await self._connect()
            try:
                info = await nc.jetstream().account_info()
                return f"{self.where}: connected (JetStream: {info.streams} stream(s))"
            finally:
                await nc.close()

        loop = asyncio.new_event_loop()
        try:
            return self._run(loop, "JetStream account info", account())
        finally:
            loop.close()

    def discover(self, stream: NatsStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        """Columns of the stream's first 100 messages (from the stream's start; nothing is acknowledged)."""
        if stream is None:
            raise ConnectorConfigError("a nats connection cannot list streams as tables; discover a stream")
        records = [r for batch in self.read(stream.model_copy(update={"max_messages": 100, "batch_size": 100}))
                   for r in _records(batch)]
        batch = tracker_for(stream.nested, hints).from_records(records) if records else None
        return stream_infos(stream.stream, batch, f"{self.where} stream {stream.stream}")

    def read(
        self,
        stream: NatsStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Iterator[Batch]:
        """Messages from the sequence after the committed one until the stream has none pending (at most
        `max_messages`); every batch carries its last stream sequence as the state."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        committed = (state or {}).get("last_seq")
        start = int(committed) + 1 if committed is not None else stream.start_sequence
        loop = asyncio.new_event_loop()
        try:
            nc = self._run(loop, "connect", self._connect())
        except BaseException:
            loop.close()  # its self-pipe sockets would otherwise be left to the garbage collector
            raise
        try:
            js = nc.jetstream()
            # An ephemeral consumer that starts at our position and never needs acknowledgements: the position
            # lives in the warehouse, so the server keeps no state for the pipeline (it expires when unused).
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                                    ack_policy=AckPolicy.NONE, inactive_threshold=60.0, mem_storage=True)
            sub = self._run(loop, f"stream {stream.stream}",
                            js.pull_subscribe(stream.subject or "", stream=stream.stream, config=config))
            info = self._run(loop, f"stream {stream.stream}", sub.consumer_info())
            if not info.num_pending:
                return
            batcher = Batcher(hints, f"{self.where} stream {stream.stream}", stream.nested)
            loaded, pending = 0, info.num_pending
            while loaded < stream.max_messages and pending:
                wanted = min(stream.batch_size, stream.max_messages - loaded)
                messages = self._run(loop, f"fetch from {stream.stream}",
                                     sub.fetch(wanted, timeout=stream.fetch_timeout_seconds))
                for message in messages:
                    batcher.add(self._record(stream, message))
                last = messages[-1].metadata
                pending = last.num_pending
                loaded += len(messages)
                yield batcher.flush({"last_seq": last.sequence.stream})
        finally:
            try:
                self._run(loop, "close", nc.close())
            finally:
                loop.close()

    def waiting(self, stream: NatsStream, state: dict[str, Any] | None, limit: int) -> int:
        """Messages past the committed sequence (the message sensor's question), from a consumer that only
        reports its pending count and is deleted at once."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        committed = (state or {}).get("last_seq")
        start = int(committed) + 1 if committed is not None else stream.start_sequence

        async def pending() -> int:
            nc = await self._connect()
            try:
                js = nc.jetstream()
                config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start,
                                        ack_policy=AckPolicy.NONE, inactive_threshold=30.0, mem_storage=True,
                                        filter_subject=stream.subject or None)
                info = await js.add_consumer(stream.stream, config=config)
                await js.delete_consumer(stream.stream, info.name)
                return int(info.num_pending or 0)
            finally:
                await nc.close()

        loop = asyncio.new_event_loop()
        try:
            return min(self._run(loop, f"stream {stream.stream}", pending()), limit)
        finally:
            loop.close()

    def _record(self, stream: NatsStream, message: Any) -> dict[str, Any]:
        meta = message.metadata
        record = decode(message.data, stream.format,
                        f"{self.where} stream {stream.stream} sequence {meta.sequence.stream}")
        if stream.metadata_columns:
            record["_sequence"] = meta.sequence.stream
            record["_subject"] = message.subject
            record["_message_id"] = (message.headers or {}).get("Nats-Msg-Id")
            record["_published_at"] = meta.timestamp.astimezone(dt.UTC).replace(tzinfo=None)
        return record


def _records(batch: Batch) -> list[dict[str, Any]]:
    return [dict(zip(batch.columns, row, strict=True)) for row in batch.rows]
