"""Stream a CSV file as typed batches without holding the file in memory."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from connectors.batches import Batch, ColumnType
from connectors.errors import SourceReadError
from connectors.files.bad_rows import BadRows

Parser = Callable[[str], Any]


def _parse_int(text: str) -> int:
    return int(text)


def _parse_float(text: str) -> float:
    return float(text)


def _parse_timestamp(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        # Warehouse timestamps are naive UTC (as for JSON records); PostgreSQL would drop the offset silently.
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _parse_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "t", "yes"):
        return True
    if lowered in ("false", "f", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


# Tried in order: the first parser that accepts every non-empty sample value wins.
_CANDIDATES: list[tuple[ColumnType, Parser]] = [
    (ColumnType.INTEGER, _parse_int),
    (ColumnType.FLOAT, _parse_float),
    (ColumnType.BOOLEAN, _parse_bool),
    (ColumnType.DATE, _parse_date),
    (ColumnType.TIMESTAMP, _parse_timestamp),
    (ColumnType.TEXT, str),
]


def infer_type(samples: list[str]) -> tuple[ColumnType, Parser]:
    """The narrowest type that parses every non-empty sample (TEXT if none are typed)."""
    values = [s for s in samples if s != ""]
    for column_type, parser in _CANDIDATES:
        try:
            for value in values:
                parser(value)
        except ValueError:
            continue
        if column_type is ColumnType.DATE and any(len(v) != 10 for v in values):
            continue  # `fromisoformat` accepts compact forms; only YYYY-MM-DD is a date column
        return column_type, parser
    return ColumnType.TEXT, str


def read_csv(
    path: Path,
    *,
    delimiter: str,
    encoding: str,
    batch_size: int,
    bad_rows: BadRows,
    quotechar: str = '"',
    sample_rows: int = 1000,
) -> Iterator[Batch]:
    """Yield `Batch`es of at most `batch_size` rows; types are inferred from the first `sample_rows`."""
    try:
        fh = path.open(newline="", encoding=encoding)
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        reader = csv.reader(fh, delimiter=delimiter, quotechar=quotechar)
        head = _head(reader, path, encoding, sample_rows)
        if head is None:
            return
        columns, types, parsers, sample = head

        def batch(rows: list[tuple[Any, ...]]) -> Batch:
            return Batch(columns=columns, types=types, rows=rows, origin=str(path),
                         extra={"bad_rows": bad_rows.take()})

        pending: list[tuple[Any, ...]] = []
        for raw, line in _rows(iter(sample), reader, path, encoding):
            if not raw:
                continue  # a blank line is not a row
            if len(raw) != len(columns):
                bad_rows.bad(line, f"expected {len(columns)} fields ({', '.join(columns)}), got {len(raw)}")
                continue
            try:
                pending.append(tuple(None if v == "" else p(v) for p, v in zip(parsers, raw)))
            except ValueError as exc:
                bad_rows.bad(line, str(exc))
                continue
            if len(pending) >= batch_size:
                yield batch(pending)
                pending = []
        if pending or bad_rows.total:
            yield batch(pending)


@dataclass(frozen=True)
class CsvHead:
    """What the first rows of a CSV file decide: column names, their inferred types and parsers."""

    columns: tuple[str, ...]
    types: dict[str, ColumnType]
    parsers: list[Parser]


def read_head(path: Path, *, delimiter: str, quotechar: str, encoding: str, sample_rows: int = 1000) -> CsvHead | None:
    """The header and inferred types of `path` (None for an empty file), decided exactly as `read_csv` does."""
    try:
        fh = path.open(newline="", encoding=encoding)
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        head = _head(csv.reader(fh, delimiter=delimiter, quotechar=quotechar), path, encoding, sample_rows)
    return None if head is None else CsvHead(columns=head[0], types=head[1], parsers=head[2])


def _head(
    reader: Any, path: Path, encoding: str, sample_rows: int
) -> tuple[tuple[str, ...], dict[str, ColumnType], list[Parser], list[tuple[list[str], int]]] | None:
    try:
        header = next(reader, None)
        if header is None:
            return None
        columns = tuple(h.strip() for h in header)
        if len(set(columns)) != len(columns) or "" in columns:
            raise SourceReadError(f"{path}:1: header has empty or duplicate column names: {list(columns)}")
        sample = [(row, reader.line_num) for row in islice(reader, sample_rows)]
    except UnicodeDecodeError as exc:
        raise _decode_error(path, encoding, exc) from exc
    except csv.Error as exc:
        raise SourceReadError(f"{path}:{reader.line_num}: {exc} (encoding {encoding!r})") from exc
    parsers: list[Parser] = []
    types: dict[str, ColumnType] = {}
    for index, name in enumerate(columns):
        column_type, parser = infer_type([row[index] for row, _ in sample if len(row) == len(columns)])
        types[name] = column_type
        parsers.append(parser)
    return columns, types, parsers, sample


def _rows(
    sample: Iterator[tuple[list[str], int]], reader: Any, path: Path, encoding: str
) -> Iterator[tuple[list[str], int]]:
    """Every record with the physical line it ends on (a quoted value may span lines)."""
    yield from sample
    try:
        for raw in reader:
            yield raw, reader.line_num
    except UnicodeDecodeError as exc:
        raise _decode_error(path, encoding, exc) from exc
    except csv.Error as exc:
        line = getattr(reader, "line_num", "?")
        raise SourceReadError(f"{path}:{line}: {exc} (encoding {encoding!r})") from exc


def undecodable_line(path: Path, encoding: str) -> tuple[int, str] | None:
    """The first line of `path` that does not decode, and why. The text layer decodes ahead in 8 KiB chunks,
    so the csv reader's own line count does not say where (it is 0 in a small file)."""
    decoder = codecs.getincrementaldecoder(encoding)()  # a multi-byte character may not span lines, but be safe
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                return number, str(exc)
    return None


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> SourceReadError:
    found = undecodable_line(path, encoding)
    line, reason = found if found is not None else ("?", str(exc))
    return SourceReadError(f"{path}:{line}: {reason} (encoding {encoding!r})")
