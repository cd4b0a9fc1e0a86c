"""Locate the value a database refused, so the error names where it came from instead of only the driver's words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.destinations.errors import DestinationError
from connectors.batches import ColumnType

# Integer columns are BIGINT (SQL_TYPES): a value outside these bounds cannot be stored on any dialect.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def out_of_range(
    table: str, origin: str, offset: int, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    types: Mapping[str, ColumnType],
) -> DestinationError | None:
    """The error for the first integer in `rows` too large for its column, naming the origin (file or URL page),
    the row within it (`offset` rows of that origin came in earlier batches) and the column; None if there is
    none (the failure had another cause). Only called after a write failed: the happy path pays nothing."""
    integer_columns = [i for i, c in enumerate(columns) if types.get(c) is ColumnType.INTEGER]
    if not integer_columns:
        return None
    for r, row in enumerate(rows):
        for i in integer_columns:
            value = row[i]
            if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
                return DestinationError(
                    f"table {table}: {origin or 'the source'}, row {offset + r + 1}, column {columns[i]}: {value} "
                    "does not fit a 64-bit integer column; declare the column `{type: text}` (or float, which "
                    "rounds) under `columns:` in the source's spec. Nothing was committed"
                )
    return None
