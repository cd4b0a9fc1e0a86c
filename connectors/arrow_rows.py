"""Rows held as an Arrow table: what columnar readers hand on, so a destination can bulk-load them without
building a Python object per value.

`ArrowRows` is a `Sequence[tuple]` like any other `Batch.rows`, so every consumer keeps working; writers that
know it (PostgreSQL COPY) take the table as it is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from connectors.batches import ColumnType

# The one Arrow type each portable type is held in; readers cast to these, writers rely on them.
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.TEXT: pa.string(),
    ColumnType.TIMESTAMP: pa.timestamp("us"),  # naive UTC, like every warehouse timestamp
    ColumnType.DATE: pa.date32(),
}


def column_type_of(arrow_type: pa.DataType) -> ColumnType | None:
    """The portable type an Arrow column converts to exactly, or None if it needs per-value handling
    (nested, binary, time-of-day, ...), which the Python path of a reader does."""
    if pa.types.is_boolean(arrow_type):
        return ColumnType.BOOLEAN
    if pa.types.is_integer(arrow_type):
        return ColumnType.INTEGER
    if pa.types.is_floating(arrow_type):
        return ColumnType.FLOAT  # not decimals: Arrow's decimal->double cast is off by an ulp for a quarter
    # of values, where float(Decimal) is exact
    if pa.types.is_timestamp(arrow_type):
        return ColumnType.TIMESTAMP
    if pa.types.is_date(arrow_type):
        return ColumnType.DATE
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return ColumnType.TEXT
    if pa.types.is_dictionary(arrow_type) and (
        pa.types.is_string(arrow_type.value_type) or pa.types.is_large_string(arrow_type.value_type)
    ):
        return ColumnType.TEXT
    return None


def to_canonical(column: pa.Array | pa.ChunkedArray, column_type: ColumnType) -> pa.Array | pa.ChunkedArray:
    """`column` in the Arrow type of `column_type`; raises `pa.ArrowInvalid` if a value does not fit
    (an unsigned integer above 2**63, nanoseconds that microseconds would truncate)."""
    target = ARROW_TYPES[column_type]
    if column.type == target:
        return column
    if column_type is ColumnType.TIMESTAMP and getattr(column.type, "tz", None) is not None:
        # Arrow keeps UTC instants under a zone; dropping the zone leaves naive UTC.
        column = column.cast(pa.timestamp(column.type.unit))
    return pc.cast(column, target, safe=True)


class ArrowRows(Sequence[tuple[Any, ...]]):
    """A read-only `Sequence[tuple]` over an Arrow table whose columns are in `ARROW_TYPES`."""

    __slots__ = ("_tuples", "table")

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._tuples: list[tuple[Any, ...]] | None = None

    def _materialized(self) -> list[tuple[Any, ...]]:
        # Only consumers that need Python values pay for them (SQLite, tests); COPY never does.
        if self._tuples is None:
            self._tuples = list(zip(*(column.to_pylist() for column in self.table.columns), strict=True))
            if self.table.num_columns == 0:
                self._tuples = [() for _ in range(self.table.num_rows)]
        return self._tuples

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[Any, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Any, ...] | Sequence[tuple[Any, ...]]:
        return self._materialized()[index]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._materialized())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ArrowRows):
            return self.table.equals(other.table)
        if isinstance(other, Sequence):
            return self._materialized() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-like sequence semantics, as list

    def __repr__(self) -> str:
        return f"ArrowRows({self.table.num_rows} rows, {self.table.schema.names})"

    def select(self, indices: Sequence[int]) -> ArrowRows:
        """Only the columns at `indices` (zero-copy)."""
        return ArrowRows(self.table.select(list(indices)))


def table_from_rows(
    columns: Sequence[str], types: dict[str, ColumnType], rows: Sequence[Sequence[Any]]
) -> pa.Table:
    """Python rows (already converted to their column's type) as a canonical Arrow table."""
    arrays = []
    for index, name in enumerate(columns):
        values = [row[index] for row in rows]
        if types[name] is ColumnType.TIMESTAMP:
            values = [_naive_utc(v) for v in values]
        arrays.append(pa.array(values, type=ARROW_TYPES[types[name]]))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _naive_utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
