"""The REST connector's declaration (see connectors/connector_type.py)."""

from __future__ import annotations

from connectors.connector_type import ConnectorType
from connectors.rest.config import RestStream
from connectors.rest.resource import RestApiResource


def _cursor(stream: RestStream) -> bool:
    return stream.incremental is not None


def _cursor_column(stream: RestStream) -> str | None:
    """The column a simple cursor path ('updated_at', 'meta.updated') lands in (nested: `meta__updated`)."""
    if stream.incremental is None:
        return None
    return "__".join(stream.incremental.cursor_path.removeprefix("$.").split("."))


CONNECTOR = ConnectorType(
    name="rest",
    resource=RestApiResource,
    stream_model=RestStream,
    summary="an HTTP JSON API: pagination, auth, retries, incremental cursors",
    cursor=_cursor,
    cursor_column=_cursor_column,
)
