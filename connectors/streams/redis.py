"""Redis Streams as a source: entries read by ID after the committed one — exactly once, replayable by ID."""

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
from connectors.streams.base import Batcher, broker_host, decode, millis_to_timestamp
from connectors.streams.config import RedisStream
from connectors.strict import reject_unknown

if TYPE_CHECKING:
    import redis


def _id_text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def _id_tuple(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


class RedisStreamsResource(dg.ConfigurableResource):
    """A Redis server whose streams pipelines load."""

    host: str = Field("127.0.0.1", description="Redis host name or address.")
    port: int = Field(6379, gt=0, lt=65536, description="Redis port.")
    db: int = Field(0, ge=0, description="Database number.")
    username: str = Field("", description="ACL user name (Redis 6+); empty for the default user.")
    password: str = Field("", description="Password, as {env: NAME}; empty for none.")
    tls: bool = Field(False, description="Connect with TLS.")
    timeout_seconds: float = Field(30.0, gt=0, description="Connect and command timeout.")

    _client: Any = PrivateAttr(default=None)
    _read: RedisStream | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    @property
    def where(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            import redis

            self._client = redis.Redis(
                host=broker_host(self.host, self.port, tls=self.tls), port=self.port, db=self.db, username=self.username or None,
                password=self.password or None,
                ssl=self.tls, socket_timeout=self.timeout_seconds, socket_connect_timeout=self.timeout_seconds,
            )
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except redis.exceptions.ResponseError as exc:
            raise SourceReadError(f"{self.where}: {what}: {exc}") from None
        except redis.exceptions.RedisError as exc:
            # The password never appears: redis-py's messages name host and port only.
            raise SourceReadError(f"{self.where}: {what} failed: {type(exc).__name__}: {exc}") from None

    def check(self) -> str:
        info = self._call("PING", self.client.info, "server")
        return f"{self.where}: connected (Redis {info.get('redis_version', '?')})"

    def discover(self, stream: RedisStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        """Columns of the stream's first 100 entries (a Redis server has no catalogue of streams to list)."""
        if stream is None:
            raise ConnectorConfigError("a redis connection cannot list its streams; discover a stream "
                                       "(declare a source that reads it)")
        entries = self._call(f"XRANGE {stream.stream}", self.client.xrange, stream.stream, count=100)
        records = [self._record(stream, _id_text(i), f) for i, f in entries]
        batch = tracker_for(stream.nested, hints).from_records(records) if records else None
        return stream_infos(stream.stream, batch, f"{self.where} stream {stream.stream}")

    def read(
        self,
        stream: RedisStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Iterator[Batch]:
        """Entries after the committed ID up to the stream's last entry when the read started (so a run ends
        while producers keep writing), at most `max_messages`; every batch carries its last ID as the state."""
        client, key = self.client, stream.stream
        last = (state or {}).get("last_id") or stream.start_id
        newest = self._call(f"XREVRANGE {key}", client.xrevrange, key, count=1)
        end = _id_text(newest[0][0]) if newest else None
        self._read = stream
        if last == "$":
            # The first run of a stream that starts at "now": remember now, load nothing.
            yield Batch(columns=(), types={}, rows=[], origin=key, state={"last_id": end or "0-0"})
            return
        if end is None or _id_tuple(end) <= _id_tuple(last):
            return
        batcher = Batcher(hints, f"{self.where} stream {key}", stream.nested)
        loaded = 0
        while loaded < stream.max_messages:
            count = min(stream.batch_size, stream.max_messages - loaded)
            entries = self._call(f"XRANGE {key}", client.xrange, key, min=f"({last}", max=end, count=count)
            if not entries:
                break
            for entry_id, fields in entries:
                batcher.add(self._record(stream, _id_text(entry_id), fields))
            last = _id_text(entries[-1][0])
            loaded += len(entries)
            yield batcher.flush({"last_id": last})
            if last == end:
                break

    def waiting(self, stream: RedisStream, state: dict[str, Any] | None, limit: int) -> int:
        """Entries after the committed ID, counted up to `limit` (the message sensor's question)."""
        last = (state or {}).get("last_id") or stream.start_id
        if last == "$":
            return 1  # a first run is needed to record where "now" is
        entries = self._call(f"XRANGE {stream.stream}", self.client.xrange, stream.stream, min=f"({last}",
                             max="+", count=limit)
        return len(entries)

    def _record(self, stream: RedisStream, entry_id: str, fields: dict[bytes, bytes]) -> dict[str, Any]:
        where = f"{self.where} stream {stream.stream} entry {entry_id}"
        if stream.format == "fields":
            record: dict[str, Any] = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        else:
            payload = fields.get(stream.payload_field.encode())
            if payload is None:
                raise SourceReadError(f"{where}: no field {stream.payload_field!r} (payload_field); the entry has "
                                      f"{', '.join(sorted(k.decode() for k in fields))}")
            record = decode(payload, stream.format, where)
        if stream.metadata_columns:
            record["_message_id"] = entry_id
            record["_published_at"] = millis_to_timestamp(_id_tuple(entry_id)[0])
        return record

    def acknowledge(self, state: dict[str, Any] | None) -> None:
        """Move the stream's consumer group (if one is configured) to the committed ID."""
        stream, self._read = self._read, None
        if stream is None or stream.group is None or not state or not state.get("last_id"):
            return
        import redis

        last_id = state["last_id"]
        try:
            self.client.xgroup_setid(stream.stream, stream.group, last_id)
        except redis.exceptions.ResponseError:  # no such group yet
            self._call(f"XGROUP CREATE {stream.stream} {stream.group}", self.client.xgroup_create,
                       stream.stream, stream.group, id=last_id, mkstream=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
