"""Destinations: where pipelines land their tables."""

from aggregator.destinations.errors import DestinationError, SchemaChangeError
from aggregator.destinations.sql import LoadResult, SqlDestination, TableInfo

__all__ = ["DestinationError", "LoadResult", "SchemaChangeError", "SqlDestination", "TableInfo"]
