"""Locate the value a database refused (or would store as something else), so the error names where it came from
instead of only the driver's words."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aggregator.destinations.errors import DestinationError
from connectors.arrow_rows import ArrowRows
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


# The float values that are not finite numbers, by the names messages and `DialectRules.float_specials` use.
FLOAT_SPECIALS = ("NaN", "Infinity", "-Infinity")


def special_float(value: Any) -> str | None:
    """`value`'s name in FLOAT_SPECIALS if it is a float (or Decimal) NaN or infinity, else None."""
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, Decimal) and not value.is_finite():
        return "NaN" if value.is_nan() else "Infinity" if value > 0 else "-Infinity"
    return None


def unstorable_float(
    table: str, origin: str, offset: int, columns: Sequence[str], rows: Sequence[Sequence[Any]],
    types: Mapping[str, ColumnType], allowed: frozenset[str], dialect: str, keys: Sequence[str] = (),
) -> DestinationError | None:
    """The error for the first NaN or infinity in a float column of `rows` that the dialect cannot store
    (`allowed`: the specials it can), naming the origin, the row within it (`offset` rows of that origin came
    in earlier batches), its `keys` values when the row has them, and the column; None if there is none.

    Checked before the rows are written: SQLite stores NaN as NULL and MySQL's DOUBLE holds no special value
    at all, so the database would not refuse them, it would change them."""
    if len(allowed) == len(FLOAT_SPECIALS):
        return None
    checked = [i for i, c in enumerate(columns) if types.get(c) is ColumnType.FLOAT]
    if not checked or not rows:
        return None
    if isinstance(rows, ArrowRows):
        # Vectorised on the happy path: only a column holding a non-finite value is walked row by row below.
        checked = [i for i in checked if pa.types.is_floating(rows.table.column(i).type)
                   and pc.any(pc.invert(pc.is_finite(rows.table.column(i)))).as_py()]
        if not checked:
            return None
    for r, row in enumerate(rows):
        for i in checked:
            name = special_float(row[i])
            if name is None or name in allowed:
                continue
            at = [f"{k}={row[columns.index(k)]!r}" for k in keys if k in columns]
            where = f"row {offset + r + 1}" + (f" ({', '.join(at)})" if at else "")
            storable = ", ".join(["finite numbers", *(s for s in FLOAT_SPECIALS if s in allowed)])
            return DestinationError(
                f"table {table}: {origin or 'the source'}, {where}, column {columns[i]}: {name} cannot be stored in "
                f"a float column on {dialect} (it would be stored as another value); allowed: {storable}. Replace "
                "the value at the source, or declare the column `{type: text}` under `columns:` in the source's "
                "spec to keep it as text. Nothing was committed"
            )
    return None
