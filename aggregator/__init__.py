"""Data Aggregator: declarative data pipelines compiled into Dagster asset graphs."""

__version__ = "0.1.0"

# Every process of an `aggregator dev` tree imports this package (code servers, run workers, step processes):
# each one exits once `aggregator dev` is gone, however it ended (no-op outside that tree).
from aggregator.dev_lifeline import watch_supervisor_from_env as _watch_supervisor

_watch_supervisor()
