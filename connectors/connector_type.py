"""`ConnectorType`: everything the platform knows about one kind of connection, declared once.

A connector package holds one `connector.py` declaring its `ConnectorType`; `connectors/registry.py` lists the
declarations. Everything else is derived from them: the spec's `connections.<n>.type` literal and
`sources[].stream` union, the JSON Schema of spec files, the resource built for a connection, path
resolution, incremental semantics, `docs/connectors/` and `aggregator connections types`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import BaseModel

from connectors.source import Source

if TYPE_CHECKING:
    from typing import Protocol

    class StreamModel(Protocol):
        """What the platform reads of any stream model: its `type` tag (the rest is the connector's)."""

        type: str
else:
    StreamModel = BaseModel

# Makes a relative path in a config absolute (relative to the spec file that declared it).
Absolute = Callable[[str], str]


def _no_cursor_column(_stream: Any) -> str | None:
    return None


def _no_cursor(_stream: Any) -> bool:
    return False


def _no_paths(config: dict[str, Any], _absolute: Absolute) -> dict[str, Any]:
    return config


@dataclass(frozen=True)
class ConnectorType:
    """One kind of connection.

    `resource` is both the config model (a Dagster `ConfigurableResource` is a pydantic model: its fields are
    the connection's `config:` options) and the `Source` implementation (`check`, `discover`, `read`)."""

    name: str  # `connections.<name>.type`
    resource: type[dg.ConfigurableResource]
    stream_model: type[BaseModel]  # its `type: Literal[...]` field is what `sources[].stream.type` says
    summary: str  # one line: CLI listing, JSON Schema, the docs index
    # Whether a stream reads only past a saved cursor the user declared (conflicts with write_mode replace).
    cursor: Callable[[Any], bool] = _no_cursor
    # The batch column a declared cursor reads (a spec may not exclude it), None when it reads no column.
    cursor_column: Callable[[Any], str | None] = _no_cursor_column
    # State kept between runs without a declared cursor (files: which file versions were loaded).
    tracks_state: bool = False
    # Relative paths in a connection's config (a base directory, a SQLite file) made absolute against the
    # spec file's directory, so a spec means the same from any working directory.
    resolve_paths: Callable[[dict[str, Any], Absolute], dict[str, Any]] = _no_paths
    docs_page: str = ""  # file under docs/connectors/; default `<name>.md`

    def __post_init__(self) -> None:
        if not issubclass(self.resource, Source):
            raise TypeError(f"connector {self.name!r}: {self.resource.__name__} does not implement Source "
                            "(check, discover, read)")
        tag = self.stream_model.model_fields.get("type")
        if tag is None or not isinstance(tag.default, str):
            raise TypeError(f"connector {self.name!r}: {self.stream_model.__name__} needs a `type: Literal[...]` "
                            "field with a default (the stream union's discriminator)")

    @property
    def stream_type(self) -> str:
        """`sources[].stream.type` of sources reading a connection of this type."""
        return str(self.stream_model.model_fields["type"].default)  # a string: checked in __post_init__

    @property
    def config_model(self) -> type[BaseModel]:
        """The model of a connection's `config:` (the resource's own fields)."""
        return self.resource

    @property
    def page(self) -> str:
        return self.docs_page or f"{self.name}.md"

    @property
    def incremental_by(self) -> str:
        """How loads of this type stay incremental, in words (CLI listing, docs index)."""
        if self.tracks_state:
            return "tracked state"
        return "none" if self.cursor is _no_cursor else "declared cursor"

    def resource_class(self) -> type[dg.ConfigurableResource]:
        return self.resource

    def build(self, config: dict[str, Any]) -> dg.ConfigurableResource:
        """The resource for a connection's (already secret-resolved or `dg.EnvVar`) config; pydantic's
        ValidationError (a ValueError) on bad options."""
        return self.resource(**config)

    def incremental(self, stream: Any, write_mode: str) -> bool:
        """Whether loads of `stream` keep state between runs; never for `replace`, which reloads everything."""
        return write_mode != "replace" and (self.tracks_state or self.cursor(stream))


def as_source(resource: object, connection: str) -> Source[Any]:
    """`resource` typed as the `Source` it must be (the load path, the worker and the CLI call it so); a
    TypeError naming the connection otherwise."""
    if not isinstance(resource, Source):
        raise TypeError(f"connection {connection!r}: {type(resource).__name__} is not a Source "
                        "(check, discover, read)")
    return resource
