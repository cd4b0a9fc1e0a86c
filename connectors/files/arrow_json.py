"""JSON Lines through Arrow's JSON parser, `batch_size` lines at a time, handed on as Arrow tables for COPY.

Same contract as `json_reader.read_jsonl` (the record reader, kept as the reference): columns and types are
those `TypeTracker` gives the same records. Arrow parses a chunk of lines in C++; a chunk it cannot take
exactly — a bad line, a key whose type changes, nested objects, a text column that now sends numbers — is
read by the record reader's code instead, so results do not depend on which path a chunk took."""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from connectors.arrow_rows import ARROW_TYPES, ArrowRows
from connectors.batches import Batch, ColumnType
from connectors.errors import SourceReadError
from connectors.files.arrow_csv import arrow_encoding
from connectors.files.bad_rows import BadRows
from connectors.files.json_reader import read_jsonl, record_of_line
from connectors.records import TypeTracker

_SIMPLE = {pa.int64(): ColumnType.INTEGER, pa.float64(): ColumnType.FLOAT, pa.bool_(): ColumnType.BOOLEAN,
           pa.string(): ColumnType.TEXT}
# Arrow reads an integer literal beyond 64 bits as a double, losing digits where Python keeps it exact. Such a
# double is at least 2**63 in magnitude: a chunk with one goes through the records path.
_INT64_LIMIT = 2.0**63


def read_jsonl_columnar(path: Path, *, encoding: str, batch_size: int, bad_rows: BadRows) -> Iterator[Batch]:
    """One record per line; never more than `batch_size` lines in memory."""
    if arrow_encoding(encoding) != "utf8":  # Arrow's JSON parser reads UTF-8 only
        yield from read_jsonl(path, encoding=encoding, batch_size=batch_size, bad_rows=bad_rows)
        return
    tracker = TypeTracker()
    as_text: dict[str, pa.DataType] = {}  # keys whose strings Arrow would read as timestamps: records keep text
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        first_line = 1
        while lines := list(islice(fh, batch_size)):
            batch = _columnar(b"".join(lines), as_text, tracker, path)
            if batch is None:
                batch = _records(lines, first_line, tracker, bad_rows, path, encoding)
            first_line += len(lines)
            if batch is not None and batch.rows:
                yield Batch(columns=batch.columns, types=batch.types, rows=batch.rows, origin=batch.origin,
                            extra={"bad_rows": bad_rows.take()})
    if bad_rows.total:
        yield tracker.from_records([], origin=str(path), extra={"bad_rows": bad_rows.take()})


def _parse(data: bytes, as_text: dict[str, pa.DataType]) -> pa.Table | None:
    try:
        return pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
            parse_options=pajson.ParseOptions(explicit_schema=pa.schema(as_text) if as_text else None,
                                              unexpected_field_behavior="infer"),
        )
    except pa.ArrowInvalid:
        return None


def _columnar(data: bytes, as_text: dict[str, pa.DataType], tracker: TypeTracker, path: Path) -> Batch | None:
    """The chunk as an Arrow batch typed as `TypeTracker` would type its records, or None to read it as records."""
    table = _parse(data, as_text)
    if table is None:
        return None
    inferred_temporal = [f.name for f in table.schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
    if inferred_temporal:
        as_text.update(dict.fromkeys(inferred_temporal, pa.string()))
        order = table.column_names
        table = _parse(data, as_text)
        if table is None:
            return None
        table = table.select([n for n in order if n in table.column_names])
    # A key held as text that is absent from every line of this chunk still comes back (all null) from the
    # explicit schema; records would not have that column, so ask Arrow which keys the chunk really has.
    maybe_absent = [n for n in as_text if n in table.column_names and table[n].null_count == table.num_rows]
    if maybe_absent:
        present = _parse(data, {})
        if present is None:
            return None
        table = table.drop_columns([n for n in maybe_absent if n not in present.column_names])
    types: dict[str, ColumnType] = {}
    arrays = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if column.null_count == len(column):
            return None  # no value to type it by: records decide (keep an earlier type, or wait for a value)
        simple = _SIMPLE.get(field.type)
        if simple is None:  # nested objects and lists: records turn them into JSON text
            return None
        if simple is ColumnType.TEXT:
            typed = _typed_strings(column)
            if typed is None:
                return None
            simple, column = typed
        if simple is ColumnType.FLOAT and (pc.max(pc.abs(column)).as_py() or 0) >= _INT64_LIMIT:
            return None
        if simple is ColumnType.FLOAT and not _records_merge_int_and_float() and _has_integer_literal(data, field.name):
            return None  # Arrow made doubles of integers and floats; records keep the two types apart
        if tracker.types.get(field.name, simple) is not simple:
            return None  # the type changed since earlier batches: records apply the rules for that
        types[field.name] = simple
        arrays.append(column)
    tracker.types.update(types)
    rows = ArrowRows(pa.Table.from_arrays(arrays, names=table.column_names))
    return Batch(columns=tuple(table.column_names), types=types, rows=rows, origin=str(path))


# Shapes whose values every ISO-aware record reader types alike and Arrow's casts parse to the same value.
_PLAIN_DATE = r"^\d{4}-\d{2}-\d{2}$"
_PLAIN_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"


def _typed_strings(column: pa.Array) -> tuple[ColumnType, pa.Array] | None:
    """A string column typed as the record reader types it: the reader is asked how it types the first value
    (text, or an ISO date/timestamp where it detects them), and the column is converted here only if every
    value has a plain shape for that type; None hands the chunk to the records path."""
    first = column.drop_null()[0].as_py()
    kind = _record_type_of(first)
    if kind is ColumnType.TEXT:
        return kind, column
    pattern = {ColumnType.DATE: _PLAIN_DATE, ColumnType.TIMESTAMP: _PLAIN_TIMESTAMP}.get(kind)
    if pattern is None or not pc.all(pc.match_substring_regex(column, pattern)).as_py():
        return None
    try:
        return kind, pc.cast(column, ARROW_TYPES[kind])
    except pa.ArrowInvalid:
        return None


@functools.cache
def _records_merge_int_and_float() -> bool:
    """Whether the record reader types a column of integers and floats as one FLOAT column (as Arrow does),
    or keeps the two types apart for the schema policy to judge."""
    batch = TypeTracker().from_records([{"v": 1, "w": 0}, {"v": 1.5, "w": 0}])
    return batch.types["v"] is ColumnType.FLOAT and not getattr(batch, "mixed", None)


def _has_integer_literal(data: bytes, key: str) -> bool:
    """Whether any line of the chunk gives `key` an integer literal (a literal-prefixed search: fast)."""
    name = re.escape(json.dumps(key).encode())
    return re.search(name + rb"\s*:\s*-?\d+\s*[,}]", data) is not None


def _record_type_of(value: str) -> ColumnType:
    """How the record reader types a string value (it may detect ISO dates and timestamps)."""
    return TypeTracker().from_records([{"value": value}, {"value": value}]).types["value"]


def _records(
    lines: list[bytes], first_line: int, tracker: TypeTracker, bad_rows: BadRows, path: Path, encoding: str
) -> Batch | None:
    """The record reader's handling of one chunk: exact line numbers for bad lines."""
    records: list[dict[str, Any]] = []
    for line, raw in enumerate(lines, start=first_line):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise SourceReadError(f"{path}:{line}: {exc} (encoding {encoding!r})") from exc
        record = record_of_line(text, line, bad_rows)
        if record is not None:
            records.append(record)
    if not records:
        return None
    return tracker.from_records(records, origin=str(path))
