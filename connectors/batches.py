"""The unit that flows from a source to a destination: a bounded batch of rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class ColumnType(str, Enum):
    """Portable column types; destinations map them to their dialect."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    DATE = "date"


@dataclass(frozen=True)
class Batch:
    """Rows as tuples in `columns` order; `types` maps every column to its portable type."""

    columns: tuple[str, ...]
    types: dict[str, ColumnType]
    rows: Sequence[tuple[Any, ...]]
    # Where the batch came from (file name, URL, table) for error messages and file tracking.
    origin: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The incremental state that is correct to commit once this batch and every batch before it are
    # committed (cursor value, files already loaded). None means "not a safe checkpoint": committing here
    # would skip or repeat rows, so a destination commits the last non-None state it has seen.
    state: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass(frozen=True)
class StreamInfo:
    """What `discover()` reports: a stream (table, file, endpoint) with its columns and portable types."""

    name: str
    columns: dict[str, ColumnType]
    detail: str = ""


def type_of(value: Any) -> ColumnType | None:
    """The portable type of a Python value, or None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.INTEGER
    if isinstance(value, float):
        return ColumnType.FLOAT
    if isinstance(value, dt.datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, dt.date):
        return ColumnType.DATE
    return ColumnType.TEXT
