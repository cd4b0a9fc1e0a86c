"""Connectors: sources as Dagster resources that stream records in bounded batches."""

from connectors.batches import Batch, ColumnType
from connectors.errors import ConnectorConfigError, ConnectorError, SourceReadError
from connectors.files.resource import FilesResource

__all__ = [
    "Batch",
    "ColumnType",
    "ConnectorConfigError",
    "ConnectorError",
    "FilesResource",
    "SourceReadError",
]
