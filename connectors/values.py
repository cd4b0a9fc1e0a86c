"""Conversions of single Python values into the form a portable column type stores."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

Converter = Callable[[Any], Any]


def naive_utc(value: Any) -> Any:
    # Warehouse timestamps are naive UTC: PostgreSQL silently drops an offset cast to `timestamp`.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def to_float(value: Any) -> Any:
    return None if value is None else float(value)


def to_timestamp(value: Any) -> Any:
    if type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    return naive_utc(value)


def to_text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def json_value(value: Any) -> Any:
    """One value of a row as JSON (query answers, previews). JSON has no NaN, dates or bytes: those become strings (NaN/inf as their names)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)
