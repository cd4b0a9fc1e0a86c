"""JSON log lines with a correlation id, for the proxy, the CLI and runs (AGGREGATOR_LOG_FORMAT=json)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The request id of the proxy request being served, or the run's request-id tag inside a run.
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@contextmanager
def correlated(value: str | None) -> Iterator[None]:
    """Every log line inside the block carries `correlation_id=value`."""
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation_id, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            data["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in data and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(environ: dict[str, str] | None = None, stream: Any = None) -> bool:
    """Install the JSON formatter on the root logger when AGGREGATOR_LOG_FORMAT=json; True if it did."""
    env = os.environ if environ is None else environ
    if env.get("AGGREGATOR_LOG_FORMAT", "text").lower() != "json":
        return False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(env.get("AGGREGATOR_LOG_LEVEL", "INFO").upper())
    return True
