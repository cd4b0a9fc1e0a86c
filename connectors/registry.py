"""The one list of connector types. A connector is declared once, in its package's `connector.py`
(`ConnectorType`: resource, stream model, hooks, summary), and registered here with one line; the spec's
connection-type literal and stream union, the JSON Schema, the resource a connection builds, docs/connectors/
and `aggregator connections types` are all derived from this list (docs/connectors/write-a-connector.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field

from connectors.connector_type import ConnectorType, StreamModel, as_source
from connectors.files.connector import CONNECTOR as FILES
from connectors.rest.connector import CONNECTOR as REST
from connectors.sql.connector import CONNECTOR as SQL
from connectors.streams.connector import CONNECTORS as MESSAGE_STREAMS

_DECLARED: tuple[ConnectorType, ...] = (FILES, SQL, REST, *MESSAGE_STREAMS)


def _registry(declared: tuple[ConnectorType, ...]) -> dict[str, ConnectorType]:
    """By name; two connectors may share neither a name nor a stream type (the stream union's tag)."""
    by_name: dict[str, ConnectorType] = {}
    stream_types: dict[str, str] = {}
    for connector in declared:
        if connector.name in by_name:
            raise ValueError(f"connector type {connector.name!r} is registered twice")
        if connector.stream_type in stream_types:
            raise ValueError(f"connectors {stream_types[connector.stream_type]!r} and {connector.name!r} both "
                             f"declare stream type {connector.stream_type!r}")
        by_name[connector.name] = connector
        stream_types[connector.stream_type] = connector.name
    return by_name


CONNECTOR_TYPES: dict[str, ConnectorType] = _registry(_DECLARED)
# Which stream `type` a connection of each type reads.
STREAM_TYPE_OF: dict[str, str] = {c.name: c.stream_type for c in CONNECTOR_TYPES.values()}
STREAM_MODELS: tuple[type[Any], ...] = tuple(c.stream_model for c in CONNECTOR_TYPES.values())

if TYPE_CHECKING:
    # Type checkers cannot see a Literal or union built at run time; they see the shapes code may rely on.
    ConnectionType = str
    Stream = StreamModel
else:
    ConnectionType = Literal[tuple(CONNECTOR_TYPES)]
    # pydantic takes a discriminator on a union only (one registered type: the model itself).
    Stream = (Annotated[Union[STREAM_MODELS], Field(discriminator="type")]  # noqa: UP007 (a runtime tuple)
              if len(STREAM_MODELS) > 1 else STREAM_MODELS[0])


def connector_type(name: str) -> ConnectorType:
    """The registered connector `name`; a ValueError listing the allowed ones otherwise."""
    try:
        return CONNECTOR_TYPES[name]
    except KeyError:
        raise ValueError(
            f"unknown connection type {name!r}; allowed: {', '.join(CONNECTOR_TYPES)}"
        ) from None


def reading(stream: StreamModel) -> ConnectorType:
    """The connector whose sources read `stream` (by its `type` tag)."""
    return _BY_STREAM_TYPE[stream.type]


_BY_STREAM_TYPE: dict[str, ConnectorType] = {c.stream_type: c for c in CONNECTOR_TYPES.values()}

__all__ = ["CONNECTOR_TYPES", "STREAM_MODELS", "STREAM_TYPE_OF", "ConnectionType", "ConnectorType", "Stream",
           "as_source", "connector_type", "reading"]
