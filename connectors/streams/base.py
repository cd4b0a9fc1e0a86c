"""What every message-stream connector shares: payload decoding, batching with the broker position as the
incremental state, the acknowledgement that follows the destination's commit, and redelivery dedup.

The position a load has reached (Redis entry ID, JetStream sequence) is the stream's incremental state: each
batch carries it, and the destination commits it in the same transaction as the rows, exactly as a cursor.
A broker that can replay by position therefore gives exactly-once loads with no broker-side state at all.
Brokers that cannot replay (RabbitMQ, MQTT) hand a message out until it is acknowledged, so acknowledgement
waits for the commit (`Acknowledging.acknowledge`, called by the load path once the rows are durable): a
crash before the commit redelivers everything the failed load read (nothing is lost), and a crash between
commit and acknowledgement redelivers messages that are already in the table — `Redelivery` recognises
those by an identity recorded in the committed state (see docs/connectors/streams.md for each broker)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from connectors.batches import Batch
from connectors.errors import SourceReadError
from connectors.nested import NestedData, tracker_for
from connectors.records import TypeHints

PayloadFormat = Literal["json", "text"]


class MessageStream(BaseModel):
    """Options every message stream has: how payloads become columns, and how much one run loads."""

    model_config = ConfigDict(extra="forbid")

    format: PayloadFormat = Field(
        "json",
        description="`json`: a payload holding a JSON object becomes one column per key (any other JSON value "
        "lands in column `value`); `text`: the payload as UTF-8 text in column `payload`.",
    )
    batch_size: int = Field(1000, gt=0, description="Messages per batch handed to the destination.")
    max_messages: int = Field(
        100_000, gt=0,
        description="At most this many messages per run; the rest wait for the next run (the message sensor "
        "starts it). Bounds a run's duration and, for brokers acknowledged after the commit, its unacked messages.",
    )
    metadata_columns: bool = Field(
        True, description="Add the broker's columns (`_message_id`, `_published_at`, subject/topic…) to each row."
    )
    nested: NestedData | None = Field(
        None,
        description="JSON payloads: unpack nested objects into `parent__child` columns and arrays into child tables "
        "`<table>__<field>` (docs/connectors/nested.md). Unset: each nested value is one JSON text column.",
    )


@runtime_checkable
class Acknowledging(Protocol):
    """A source that must tell its broker a load is durable: called once the load's transaction committed,
    with the state it committed (never on failure: the broker then redelivers what the load read)."""

    def acknowledge(self, state: dict[str, Any] | None) -> None: ...


def decode(payload: bytes, fmt: PayloadFormat, where: str) -> dict[str, Any]:
    """A payload as a record. Errors name where the message is, never its content (it may be personal data)."""
    if fmt == "text":
        try:
            return {"payload": payload.decode("utf-8")}
        except UnicodeDecodeError as exc:
            raise SourceReadError(f"{where}: payload is not UTF-8 text (byte {exc.start}); use format: json "
                                  "only for JSON payloads, text for UTF-8 ones") from None
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise SourceReadError(f"{where}: payload is not valid JSON ({type(exc).__name__} at position "
                              f"{getattr(exc, 'pos', '?')}); set format: text to load payloads as text") from None
    return value if isinstance(value, dict) else {"value": value}


def millis_to_timestamp(millis: int) -> dt.datetime:
    """A broker's epoch milliseconds as the naive UTC timestamp the destinations store."""
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).replace(tzinfo=None)


class Batcher:
    """Collects records and turns them into typed `Batch`es, each carrying the state to commit with it."""

    def __init__(self, hints: TypeHints | None, origin: str, nested: NestedData | None = None) -> None:
        self.tracker = tracker_for(nested, hints)  # payloads nest as REST records and JSON files do
        self.origin = origin
        self.records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def flush(self, state: dict[str, Any] | None) -> Batch:
        batch = self.tracker.from_records(self.records, origin=self.origin, state=state)
        self.records = []
        return batch


def content_key(*parts: bytes | str) -> str:
    """A short stable identity of a message that has no id of its own (MQTT): a hash of its topic and payload."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


class Redelivery:
    """Recognises messages a broker redelivers although the last load committed them.

    The state a load commits lists the identities of the messages it loaded (`loaded`); a later load skips a
    message the broker marks as redelivered whose identity is in that list (counted: two loaded messages with
    the same identity are skipped twice at most). Only the acknowledgement of that last load can have been
    lost — every earlier load was acknowledged before the next one started — so the list of one load is enough."""

    def __init__(self, state: Mapping[str, Any] | None) -> None:
        self.previous: Counter[str] = Counter((state or {}).get("loaded") or [])
        self.loaded: list[str] = []
        self.skipped = 0

    def seen(self, identity: str | None, redelivered: bool) -> bool:
        """True if this message is a redelivery of one already committed (skip it, acknowledge it)."""
        if identity is not None and redelivered and self.previous[identity] > 0:
            self.previous[identity] -= 1
            self.skipped += 1
            return True
        return False

    def record(self, identity: str | None) -> None:
        if identity is not None:
            self.loaded.append(identity)

    def state(self, total: int) -> dict[str, Any]:
        """The state to commit: this load's identities and a running message count (so it always changes)."""
        return {"loaded": list(self.loaded), "messages": total}


def previous_total(state: Mapping[str, Any] | None) -> int:
    return int((state or {}).get("messages") or 0)



def broker_host(host: str, port: int, field: str = "host", tls: bool = False) -> str:
    """The host to connect to, once every address `host` resolves to passed the egress rule (connectors/
    egress.py: brokers obey the same rule as HTTP sources, so a spec cannot point a connection at the
    platform's own services). Without TLS that is the checked address itself, since a second lookup could
    answer another (DNS rebinding); with TLS the name, which the certificate check binds the connection to."""
    from connectors.egress import pinned_address

    address = pinned_address(host, port, field)
    return host if tls else address
