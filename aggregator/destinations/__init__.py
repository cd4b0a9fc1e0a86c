"""Destinations: where pipelines land their tables."""

from aggregator.destinations.sql import LoadResult, SqlDestination, TableInfo

__all__ = ["LoadResult", "SqlDestination", "TableInfo"]
