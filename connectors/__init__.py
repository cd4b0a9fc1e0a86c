"""Connectors: sources as Dagster resources that stream records in bounded batches."""

from connectors.batches import Batch, ColumnType, StreamInfo
from connectors.errors import (
    AuthError,
    ConnectorConfigError,
    ConnectorError,
    HttpRequestError,
    SourceReadError,
)


def __getattr__(name: str) -> object:
    # Imported on first use: the files resource pulls in Dagster, pandas and pyarrow (seconds), and every
    # `connectors.*` import runs this file, `aggregator dev` (connectors.egress) and the CLI included.
    if name == "FilesResource":
        from connectors.files.resource import FilesResource

        return FilesResource
    raise AttributeError(f"module 'connectors' has no attribute {name!r}")


__all__ = [
    "AuthError",
    "Batch",
    "ColumnType",
    "ConnectorConfigError",
    "ConnectorError",
    "FilesResource",
    "HttpRequestError",
    "SourceReadError",
    "StreamInfo",
]
