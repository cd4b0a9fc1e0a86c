"""The unit that flows from a source to a destination: a bounded batch of rows."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
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
    # Columns whose values have more than one portable type in this batch: the types in the order their
    # first value appears. Their values are left as they are (normalized, not converted) so that the
    # destination can apply its schema policy to each type exactly as if the rows came one per batch;
    # `types` holds the first type.
    mixed: Mapping[str, tuple[ColumnType, ...]] = field(default_factory=dict)
    # Columns with no type yet: every value so far was NULL. A destination does not create them (their
    # type is unknown) until a batch brings a value; `types` holds TEXT for them as a placeholder.
    untyped: frozenset[str] = frozenset()
    # Rows of child tables that belong with these rows (nested arrays, see connectors/nested.py), by path
    # (`items`, `items__tags`); the destination writes them in the same transaction as the rows.
    children: Mapping[str, Batch] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def with_state(self, state: dict[str, Any] | None) -> Batch:
        """This batch carrying `state` (the checkpoint to commit with it)."""
        return dataclasses.replace(self, state=state)

    def seen_types(self, column: str) -> tuple[ColumnType, ...]:
        """The portable types of `column`'s values, first-seen order (empty if the column is untyped)."""
        if column in self.untyped:
            return ()
        return self.mixed.get(column) or (self.types[column],)


@dataclass(frozen=True)
class StreamInfo:
    """What `discover()` reports: a stream (table, file, endpoint) with its columns and portable types."""

    name: str
    columns: dict[str, ColumnType]
    detail: str = ""


def type_of(value: Any) -> ColumnType | None:
    """The portable type of a (normalized) Python value, or None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, int):
        return ColumnType.INTEGER
    if isinstance(value, (float, Decimal)):
        return ColumnType.FLOAT
    if isinstance(value, dt.datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, dt.date):
        return ColumnType.DATE
    return ColumnType.TEXT
