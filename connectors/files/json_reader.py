"""JSON Lines (streamed line by line) and JSON documents (a list of records, optionally under a path)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.batches import Batch
from connectors.errors import SourceReadError
from connectors.files.bad_rows import BadRows
from connectors.jsonpath import find, parse_path
from connectors.nested import NestedTracker
from connectors.records import TypeTracker


def record_of_line(text: str, line: int, bad_rows: BadRows) -> dict[str, Any] | None:
    """One JSON Lines line as a record; None for a blank line or a bad one (recorded in `bad_rows` with its line)."""
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        bad_rows.bad(line, f"invalid JSON: {exc.msg} at column {exc.colno}")
        return None
    if not isinstance(record, dict):
        bad_rows.bad(line, f"expected a JSON object, got {type(record).__name__}")
        return None
    return record

def read_jsonl(
    path: Path, *, encoding: str, batch_size: int, bad_rows: BadRows, tracker: TypeTracker | NestedTracker | None = None
) -> Iterator[Batch]:
    """One record per line; never more than `batch_size` records in memory."""
    tracker = tracker or TypeTracker()
    pending: list[dict[str, Any]] = []
    try:
        fh = path.open(encoding=encoding)
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    with fh:
        line = 0
        try:
            for line, text in enumerate(fh, start=1):
                record = record_of_line(text, line, bad_rows)
                if record is None:
                    continue
                pending.append(record)
                if len(pending) >= batch_size:
                    yield tracker.from_records(pending, origin=str(path), extra={"bad_rows": bad_rows.take()})
                    pending = []
        except UnicodeDecodeError as exc:
            raise SourceReadError(f"{path}:{line + 1}: {exc} (encoding {encoding!r})") from exc
    if pending or bad_rows.total:
        yield tracker.from_records(pending, origin=str(path), extra={"bad_rows": bad_rows.take()})


def read_json(
    path: Path, *, encoding: str, batch_size: int, bad_rows: BadRows, records_path: str | None,
    tracker: TypeTracker | NestedTracker | None = None,
) -> Iterator[Batch]:
    """A JSON document whose records are a list (at `records_path`). The document is parsed whole, so
    prefer JSON Lines for files larger than memory; batches handed on are still bounded."""
    try:
        document = json.loads(path.read_text(encoding=encoding))
    except OSError as exc:
        raise SourceReadError(f"cannot open {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SourceReadError(f"{path}: {exc} (encoding {encoding!r})") from exc
    except json.JSONDecodeError as exc:
        raise SourceReadError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from exc
    records = find(document, parse_path(records_path or "$"))
    if isinstance(records, dict) and records_path is None:
        records = [records]  # a single object is one record
    if not isinstance(records, list):
        raise SourceReadError(
            f"{path}: expected a list of records at {records_path or '$'!r}, found {type(records).__name__}; "
            "set records_path to where the list is"
        )
    tracker = tracker or TypeTracker()
    pending: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            bad_rows.bad(index + 1, f"record {index} is {type(record).__name__}, not an object")
            continue
        pending.append(record)
        if len(pending) >= batch_size:
            yield tracker.from_records(pending, origin=str(path), extra={"bad_rows": bad_rows.take()})
            pending = []
    if pending or bad_rows.total:
        yield tracker.from_records(pending, origin=str(path), extra={"bad_rows": bad_rows.take()})
