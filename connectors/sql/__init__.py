"""SQL databases as sources."""

from connectors.sql.config import SqlStream
from connectors.sql.resource import SqlResource

__all__ = ["SqlResource", "SqlStream"]
