"""What every connector offers: the `Source` protocol that pipelines and the CLI program against."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from typing import Any, Protocol, TypeVar, runtime_checkable

from connectors.batches import Batch, StreamInfo
from connectors.records import TypeHints

StreamT_contra = TypeVar("StreamT_contra", contravariant=True)


@runtime_checkable
class Source(Protocol[StreamT_contra]):
    """A connector resource: `check` proves it can reach its system, `discover` lists streams and columns,
    `read` streams one stream's records in bounded batches."""

    def check(self) -> str:
        """One line saying what was reached; raises a ConnectorError naming what failed."""
        ...

    def discover(self, stream: StreamT_contra | None = None) -> list[StreamInfo]:
        """The columns and portable types of `stream`, or of everything the connection can list if None
        (a connector that cannot list anything raises ConnectorConfigError asking for a stream)."""
        ...

    def read(
        self,
        stream: StreamT_contra,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Generator[Batch, None, None]:
        """Batches of `stream`'s records: only those past `state` (incremental), inside `window`
        (partitions), typed as `hints` declare. A generator: closing it early (a preview's row limit, a run
        that stops) stops reading and releases what it holds (cursors, connections, prefetch threads)."""
        ...
