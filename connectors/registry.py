"""The one list of connector types. Connection `type` literals, stream types, resource classes and the
per-type JSON Schema of connection configs are all derived from it, so a new connector is one entry here."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from connectors.files.config import FileStream
from connectors.rest.config import RestStream
from connectors.sql.config import SqlStream
from connectors.streams.config import RedisStream


@dataclass(frozen=True)
class ConnectorType:
    """One kind of connection: what `type:` says, what its sources' `stream.type` says, what it reads."""

    name: str  # `connections.<name>.type`
    stream_type: str  # `sources[].stream.type` of sources reading it
    stream_model: type[BaseModel]
    resource_path: str  # "module:Class", imported on first use so loading specs stays light
    summary: str

    def resource_class(self) -> Any:
        """The Dagster resource class (a `Source`) that a connection of this type builds."""
        module, _, name = self.resource_path.partition(":")
        return getattr(importlib.import_module(module), name)


CONNECTOR_TYPES: dict[str, ConnectorType] = {
    c.name: c
    for c in (
        ConnectorType("files", "file", FileStream, "connectors.files.resource:FilesResource",
                      "CSV, JSON, JSON Lines, Parquet and Excel files below a directory"),
        ConnectorType("sql", "sql", SqlStream, "connectors.sql.resource:SqlResource",
                      "any SQLAlchemy database (tables, views or a query)"),
        ConnectorType("rest", "rest", RestStream, "connectors.rest.resource:RestApiResource",
                      "an HTTP JSON API: pagination, auth, retries, incremental cursors"),
        ConnectorType("redis", "redis", RedisStream, "connectors.streams.redis:RedisStreamsResource",
                      "Redis Streams, read by entry ID: exactly once"),
    )
}


def connector_type(name: str) -> ConnectorType:
    """The registered connector `name`; a ValueError listing the allowed ones otherwise."""
    try:
        return CONNECTOR_TYPES[name]
    except KeyError:
        raise ValueError(
            f"unknown connection type {name!r}; allowed: {', '.join(CONNECTOR_TYPES)}"
        ) from None
