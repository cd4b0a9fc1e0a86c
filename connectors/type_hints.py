"""Declared column types (a spec's `columns:`) and the strict conversions that apply them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.batches import ColumnType
from connectors.errors import SourceReadError
from connectors.values import Converter, naive_utc, to_text, to_timestamp

_COERCE_ERRORS = (ValueError, TypeError, ArithmeticError)


def _coerce_integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        if value != int(value):
            raise ValueError("has a fraction")
        return int(value)
    return int(str(value).strip())


def _coerce_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "yes", "1"):
        return True
    if text in ("false", "f", "no", "0"):
        return False
    raise ValueError("not a boolean")


def _coerce_timestamp(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return to_timestamp(value)
    return naive_utc(dt.datetime.fromisoformat(str(value).strip()))


def _coerce_date(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time():
            raise ValueError("has a time of day")
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


_COERCE: dict[ColumnType, Converter] = {
    ColumnType.TEXT: to_text,
    ColumnType.INTEGER: _coerce_integer,
    ColumnType.FLOAT: lambda v: float(v),
    ColumnType.BOOLEAN: _coerce_boolean,
    ColumnType.TIMESTAMP: _coerce_timestamp,
    ColumnType.DATE: _coerce_date,
}


@dataclass(frozen=True)
class TypeHints:
    """What a spec says about a stream's types: declared column types win over inference."""

    columns: Mapping[str, ColumnType] = field(default_factory=dict)
    # Detect ISO-8601 dates and timestamps in string values (dlt's default); False keeps strings as text.
    detect_timestamps: bool = True


def coercer(name: str, column_type: ColumnType, origin: str) -> Converter:
    """Converts a value of column `name` to its declared type; a value that cannot be is a clear error."""
    coerce = _COERCE[column_type]

    def convert(value: Any) -> Any:
        try:
            return coerce(value)
        except _COERCE_ERRORS as exc:
            raise SourceReadError(
                f"{origin or 'source'}: column {name!r} is declared {column_type.value} in the spec's "
                f"`columns:`, but the value {value!r} is not a {column_type.value} ({exc}); fix the "
                "source or the declared type"
            ) from exc

    return convert
