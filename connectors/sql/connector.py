"""The SQL connector's declaration (see connectors/connector_type.py)."""

from __future__ import annotations

from typing import Any

from connectors.connector_type import Absolute, ConnectorType
from connectors.sql.config import SqlStream
from connectors.sql.resource import SqlResource


def _paths(config: dict[str, Any], absolute: Absolute) -> dict[str, Any]:
    """`sqlite:///shop.db` names a file relative to the spec; `sqlite:////abs` and in-memory ones stay."""
    url = config.get("url")
    if not isinstance(url, str) or not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return config
    database = url.removeprefix("sqlite:///")
    if not database or database.startswith((":memory:", "file:")):
        return config
    return {**config, "url": f"sqlite:///{absolute(database)}"}


def _cursor(stream: SqlStream) -> bool:
    return stream.cursor_column is not None


CONNECTOR = ConnectorType(
    name="sql",
    resource=SqlResource,
    stream_model=SqlStream,
    summary="any SQLAlchemy database (tables, views or a query)",
    cursor=_cursor,
    cursor_column=lambda stream: stream.cursor_column,
    resolve_paths=_paths,
)
