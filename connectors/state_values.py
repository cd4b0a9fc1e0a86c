"""Cursor values in incremental state: JSON-safe, and decoded back to the type they were compared as."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


def encode_value(value: Any) -> Any:
    """A JSON-safe form of a cursor value; dates and timestamps keep their type so they compare correctly."""
    if isinstance(value, dt.datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (kind, text), = value.items()
        if kind == "timestamp":
            return dt.datetime.fromisoformat(text)
        if kind == "date":
            return dt.date.fromisoformat(text)
        if kind == "decimal":
            return Decimal(text)
    return value


def later(a: Any, b: Any) -> Any:
    """The larger of two cursor values, ignoring None."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
