"""Stream a CSV file as typed batches without holding the file in memory."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from connectors.batches import Batch, ColumnType
from connectors.errors import SourceReadError

Parser = Callable[[str], Any]


def _parse_int(text: str) -> int:
    return int(text)


def _parse_float(text: str) -> float:
    return float(text)


def _parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


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
    path: Path, *, delimiter: str, encoding: str, batch_size: int, sample_rows: int = 1000
) -> Iterator[Batch]:
    """Yield `Batch`es of at most `batch_size` rows; types are inferred from the first `sample_rows`."""
    try:
        fh = path.open(newline="", encoding=encoding)
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        columns = tuple(h.strip() for h in header)
        if len(set(columns)) != len(columns) or "" in columns:
            raise SourceReadError(f"{path}:1: header has empty or duplicate column names: {list(columns)}")
        sample = list(islice(reader, sample_rows))
        parsers: list[Parser] = []
        types: dict[str, ColumnType] = {}
        for index, name in enumerate(columns):
            column_type, parser = infer_type([row[index] for row in sample if index < len(row)])
            types[name] = column_type
            parsers.append(parser)

        def convert(raw: list[str], line: int) -> tuple[Any, ...]:
            if len(raw) != len(columns):
                raise SourceReadError(
                    f"{path}:{line}: expected {len(columns)} fields ({', '.join(columns)}), got {len(raw)}"
                )
            try:
                return tuple(None if v == "" else p(v) for p, v in zip(parsers, raw, strict=True))
            except ValueError as exc:
                raise SourceReadError(f"{path}:{line}: {exc}") from exc

        line = 1  # header
        pending: list[tuple[Any, ...]] = []
        rows: Iterator[list[str]] = iter(sample)
        for source in (rows, reader):
            for raw in source:
                line += 1
                pending.append(convert(raw, line))
                if len(pending) >= batch_size:
                    yield Batch(columns=columns, types=types, rows=pending, origin=str(path))
                    pending = []
        if pending:
            yield Batch(columns=columns, types=types, rows=pending, origin=str(path))
