"""Connectors: sources as Dagster resources that stream records in bounded batches."""

from connectors.batches import Batch, ColumnType, StreamInfo
from connectors.errors import (
    AuthError,
    ConnectorConfigError,
    ConnectorError,
    HttpRequestError,
    SourceReadError,
)
from connectors.files.resource import FilesResource

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
