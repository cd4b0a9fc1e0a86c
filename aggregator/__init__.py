"""Data Aggregator: declarative data pipelines compiled into Dagster asset graphs."""

__version__ = "0.1.0"
