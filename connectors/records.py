"""Turn rows of Python values (JSON records, query rows, spreadsheet cells) into typed `Batch`es."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any

from connectors.batches import Batch, ColumnType, type_of
from connectors.type_hints import TypeHints, coercer
from connectors.values import Converter
from connectors.values import naive_utc as _naive_utc
from connectors.values import to_float as _to_float
from connectors.values import to_text as _to_text
from connectors.values import to_timestamp as _to_timestamp

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


def _any_aware(values: Sequence[Any] | Iterable[Any]) -> bool:
    # attrgetter + filter stay in C; most timestamp columns are naive and need no per-value conversion.
    return any(map(attrgetter("tzinfo"), filter(None, values)))


# ISO-8601 as APIs send it (what dlt's default autodetection accepts): a date, or a date and time with
# optional seconds, fraction and offset. Anything else stays text.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_ISO_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?\Z")


def iso_type(value: str) -> ColumnType:
    """DATE or TIMESTAMP if `value` is an ISO-8601 date or timestamp that parses, else TEXT."""
    if len(value) == 10 and _ISO_DATE.match(value):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return ColumnType.TEXT
        return ColumnType.DATE
    if 16 <= len(value) <= 35 and _ISO_TIMESTAMP.match(value):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            return ColumnType.TEXT
        return ColumnType.TIMESTAMP
    return ColumnType.TEXT


def _parse_iso(value: Any) -> Any:
    """An ISO date/timestamp string as a date or naive-UTC datetime; any other value unchanged."""
    if type(value) is not str:
        return value
    kind = iso_type(value)
    if kind is ColumnType.DATE:
        return dt.date.fromisoformat(value)
    if kind is ColumnType.TIMESTAMP:
        return _naive_utc(dt.datetime.fromisoformat(value))
    return value


def _normalize(value: Any) -> Any:
    """A value of a mixed column in the form its portable type is written in (no cross-type conversion)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return _naive_utc(value)
    if type(value) in _SIMPLE:
        return value
    return str(value)


def _normalize_detecting(value: Any) -> Any:
    return _parse_iso(value) if type(value) is str else _normalize(value)


def conform(value: Any, column_type: ColumnType) -> Any:
    """A normalized value that fits `column_type` (see `schema.fits`) in the form that column stores."""
    if value is None:
        return None
    if column_type is ColumnType.TEXT:
        return _to_text(value)
    if column_type is ColumnType.FLOAT:
        return float(value)
    if column_type is ColumnType.TIMESTAMP:
        return _to_timestamp(value)
    return value


def infer_column(
    values: Iterable[Any], *, detect: bool = True
) -> tuple[ColumnType | None, Converter | None, tuple[ColumnType, ...]]:
    """The portable type of a column's values, the converter its values need (None if none), and, when
    the values have more than one portable type, those types in first-seen order (else ()).

    With `detect`, strings that are ISO-8601 dates or timestamps count as DATE/TIMESTAMP values, decided
    by the first non-NULL value: a column whose first string is not a date stays TEXT throughout."""
    kinds = set(map(type, values))  # C-speed: no Python frame per value
    kinds.discard(type(None))
    if not kinds:
        return None, None, ()
    if kinds == {str} and detect:
        first = next(v for v in values if v is not None)
        first_type = iso_type(first)
        if first_type is ColumnType.TEXT:
            return ColumnType.TEXT, None, ()
        return _infer_iso(values, first_type)
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind in _SIMPLE:
            column_type = _SIMPLE[kind]
            if column_type is ColumnType.TIMESTAMP and _any_aware(values):
                return column_type, _naive_utc, ()
            return column_type, None, ()
        if kind is Decimal:
            return ColumnType.FLOAT, _to_float, ()
        return ColumnType.TEXT, _to_text, ()
    if kinds <= {dict, list}:
        return ColumnType.TEXT, _to_text, ()
    if kinds <= {dict, list, str} and not detect:
        return ColumnType.TEXT, _to_text, ()
    return _infer_mixed(values, _normalize_detecting if detect else _normalize)


def _infer_iso(
    values: Iterable[Any], first_type: ColumnType
) -> tuple[ColumnType | None, Converter | None, tuple[ColumnType, ...]]:
    """A string column whose first value is an ISO date/timestamp. The common case (every value the same
    kind) is checked and parsed with C-level map() calls; anything else takes the per-value path."""
    strings = [v for v in values if v is not None]
    pattern, parse = ((_ISO_DATE, dt.date.fromisoformat) if first_type is ColumnType.DATE
                      else (_ISO_TIMESTAMP, dt.datetime.fromisoformat))
    if all(map(pattern.match, strings)):
        try:
            parsed = list(map(parse, strings))
        except ValueError:
            parsed = None  # e.g. 2026-02-30: not every value is a valid date
        if parsed is not None:
            if first_type is ColumnType.TIMESTAMP and _any_aware(parsed):
                parsed = list(map(_naive_utc, parsed))
            # Lookup in a dict is a C call per value when the rows are converted.
            return first_type, dict(zip(strings, parsed)).__getitem__, ()
    return _infer_mixed(values, _normalize_detecting)


def _infer_mixed(
    values: Iterable[Any], normalize: Converter
) -> tuple[ColumnType | None, Converter | None, tuple[ColumnType, ...]]:
    # Rare (a column whose values change type), so a Python loop is fine here.
    seen: dict[ColumnType, None] = {}
    first_is_text = False
    for value in values:
        if value is None:
            continue
        kind = type_of(normalize(value))
        assert kind is not None
        if not seen:
            first_is_text = kind is ColumnType.TEXT
        seen.setdefault(kind)
    if first_is_text and normalize is _normalize_detecting:
        # The column starts as text: later date-like strings are text too (as one row per batch would give).
        return _infer_mixed(values, _normalize)
    order = tuple(seen)
    if len(order) == 1:
        return order[0], normalize, ()
    return order[0], normalize, order


class TypeTracker:
    """Builds batches for one stream, remembering column types across batches.

    A column that is entirely NULL in a batch keeps the type it had in earlier batches; one that never had
    a value is `untyped`, so a sparse field is typed by its first value whatever the batch size."""

    def __init__(self, declared: Mapping[str, ColumnType] | None = None, hints: TypeHints | None = None) -> None:
        self.hints = hints or TypeHints()
        self.types: dict[str, ColumnType] = {**(declared or {}), **self.hints.columns}

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
        mixed: dict[str, tuple[ColumnType, ...]] = {}
        untyped: set[str] = set()
        converters: list[tuple[int, Converter]] = []
        hinted = self.hints.columns
        for index, name in enumerate(columns):
            if name in hinted:
                types[name] = hinted[name]
                converters.append((index, coercer(name, hinted[name], origin)))
                continue
            # A column that started as text stays text: later date-like strings are not reinterpreted.
            detect = self.hints.detect_timestamps and self.types.get(name) is not ColumnType.TEXT
            # map(itemgetter) keeps the per-value work in C: inference is on the hot path of every load.
            column_type, converter, seen = infer_column(_Column(rows, index), detect=detect)
            if column_type is None:
                known = self.types.get(name)
                if known is None:
                    untyped.add(name)
                types[name] = known or ColumnType.TEXT
                continue
            # The first type a column ever had decides date detection for the rest of the stream.
            self.types.setdefault(name, column_type)
            types[name] = column_type
            if seen:
                mixed[name] = seen
            if converter is not None:
                converters.append((index, converter))
        if len(converters) == 1:
            rows = _convert_one(rows, *converters[0])
        elif converters:
            rows = [_convert(row, converters) for row in rows]
        return Batch(columns=tuple(columns), types=types, rows=rows, origin=origin, state=state,
                     extra=extra or {}, mixed=mixed, untyped=frozenset(untyped))

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


def apply_hints(batch: Batch, hints: TypeHints | None) -> Batch:
    """`batch` with its declared columns coerced to their declared types (for readers that infer on their
    own, such as CSV); readers that use a TypeTracker get the hints directly."""
    if hints is None or not hints.columns or not set(hints.columns) & set(batch.columns):
        return batch
    types = dict(batch.types)
    converters: list[tuple[int, Converter]] = []
    for index, name in enumerate(batch.columns):
        if name in hints.columns:
            types[name] = hints.columns[name]
            converters.append((index, coercer(name, hints.columns[name], batch.origin)))
    hinted = set(hints.columns)
    return dataclasses.replace(
        batch, types=types, rows=[_convert(tuple(row), converters) for row in batch.rows],
        mixed={k: v for k, v in batch.mixed.items() if k not in hinted}, untyped=batch.untyped - hinted,
    )


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


def _convert_one(rows: list[tuple[Any, ...]], index: int, converter: Converter) -> list[tuple[Any, ...]]:
    # One converted column (typically a timestamp): convert the column at C speed, then splice it back.
    column = [None if v is None else converter(v) for v in map(itemgetter(index), rows)]
    head, tail = slice(0, index), slice(index + 1, None)
    return [(*row[head], value, *row[tail]) for row, value in zip(rows, column)]


def _convert(row: tuple[Any, ...], converters: list[tuple[int, Converter]]) -> tuple[Any, ...]:
    values = list(row)
    for index, converter in converters:
        value = values[index]
        if value is not None:
            values[index] = converter(value)
    return tuple(values)
