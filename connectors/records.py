"""Turn rows of Python values (JSON records, query rows, spreadsheet cells) into typed `Batch`es."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any

from connectors.batches import Batch, ColumnType

Converter = Callable[[Any], Any]

# Exact Python type -> portable type. `type(v)` lookups keep inference a set comprehension per column,
# which matters at hundreds of thousands of records per second.
_SIMPLE: dict[type, ColumnType] = {
    bool: ColumnType.BOOLEAN,
    int: ColumnType.INTEGER,
    float: ColumnType.FLOAT,
    str: ColumnType.TEXT,
    dt.datetime: ColumnType.TIMESTAMP,
    dt.date: ColumnType.DATE,
}


def _naive_utc(value: Any) -> Any:
    # Warehouse timestamps are naive UTC: PostgreSQL silently drops an offset cast to `timestamp`.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _to_float(value: Any) -> Any:
    return None if value is None else float(value)


def _to_timestamp(value: Any) -> Any:
    if type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    return _naive_utc(value)


def _to_text(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _any_aware(values: Sequence[Any] | Iterable[Any]) -> bool:
    # attrgetter + filter stay in C; most timestamp columns are naive and need no per-value conversion.
    return any(map(attrgetter("tzinfo"), filter(None, values)))


def infer_column(values: Iterable[Any]) -> tuple[ColumnType | None, Converter | None]:
    """The portable type of a column's values and the converter its values need (None if none)."""
    kinds = set(map(type, values))  # C-speed: no Python frame per value
    kinds.discard(type(None))
    if not kinds:
        return None, None
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in _SIMPLE:
            column_type = _SIMPLE[kind]
            if column_type is ColumnType.TIMESTAMP and _any_aware(values):
                return column_type, _naive_utc
            return column_type, None
        if kind is Decimal:
            return ColumnType.FLOAT, _to_float
        return ColumnType.TEXT, _to_text
    if kinds <= {int, float, Decimal}:
        return ColumnType.FLOAT, (_to_float if Decimal in kinds else None)
    if kinds <= {dt.date, dt.datetime}:
        return ColumnType.TIMESTAMP, _to_timestamp
    return ColumnType.TEXT, _to_text


class TypeTracker:
    """Builds batches for one stream, remembering column types across batches.

    A column that is entirely NULL in a batch keeps the type it had in earlier batches (TEXT if it never
    had one), so a sparse field does not flip the destination column's type from batch to batch."""

    def __init__(self, declared: Mapping[str, ColumnType] | None = None) -> None:
        self.types: dict[str, ColumnType] = dict(declared or {})

    def from_tuples(
        self,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        *,
        origin: str = "",
        state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Batch:
        types: dict[str, ColumnType] = {}
        converters: list[tuple[int, Converter]] = []
        for index, name in enumerate(columns):
            # map(itemgetter) keeps the per-value work in C: inference is on the hot path of every load.
            column_type, converter = infer_column(_Column(rows, index))
            if column_type is None:
                column_type = self.types.get(name, ColumnType.TEXT)
            elif self.types.get(name) is ColumnType.TEXT and column_type is not ColumnType.TEXT:
                # Once a column has been text, keep sending text: values of mixed types stay comparable.
                column_type, converter = ColumnType.TEXT, _to_text
            self.types[name] = types[name] = column_type
            if converter is not None:
                converters.append((index, converter))
        if converters:
            rows = [_convert(row, converters) for row in rows]
        return Batch(columns=tuple(columns), types=types, rows=rows, origin=origin, state=state,
                     extra=extra or {})

    def from_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        origin: str = "",
        state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Batch:
        """A batch from dict records: columns are the union of their keys in first-seen order."""
        rows = _uniform_rows(records)
        if rows is not None:
            columns: tuple[str, ...] = tuple(records[0]) if records else ()
        else:
            seen: dict[str, None] = {}
            for record in records:
                seen.update(dict.fromkeys(record))
            columns = tuple(seen)
            rows = [tuple(map(record.get, columns)) for record in records]
        return self.from_tuples(columns, rows, origin=origin, state=state, extra=extra)


class _Column:
    """A lazily re-iterable view of one column of `rows` (inference may need two passes)."""

    __slots__ = ("index", "rows")

    def __init__(self, rows: Sequence[Sequence[Any]], index: int) -> None:
        self.rows, self.index = rows, index

    def __iter__(self) -> Iterator[Any]:
        return map(itemgetter(self.index), self.rows)


def _uniform_rows(records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]] | None:
    """Rows in the first record's key order if every record has exactly those keys (the common case, done
    at C speed with itemgetter), else None."""
    if not records:
        return []
    keys = tuple(records[0])
    if len(keys) < 2:
        return None
    get, width = itemgetter(*keys), len(keys)
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    try:
        for record in records:
            if len(record) != width:
                return None
            append(get(record))  # KeyError if a key is missing; same length then means same key set
    except KeyError:
        return None
    return rows


def _convert(row: tuple[Any, ...], converters: list[tuple[int, Converter]]) -> tuple[Any, ...]:
    values = list(row)
    for index, converter in converters:
        value = values[index]
        if value is not None:
            values[index] = converter(value)
    return tuple(values)
