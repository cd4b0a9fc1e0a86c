"""Streaming a warehouse table out as CSV or Parquet, one chunk of rows at a time (constant memory)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aggregator.proxy.api import csv_safe
from aggregator.proxy.api.csv_safe import write_row
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.warehouse import FETCH_CHUNK, GUARD_COLUMN, Warehouse, pg_guarded

# Memory of one fetched chunk at most: rows per fetch are this over the row cap.
CHUNK_BYTES = 64 << 20
# Small chunks (long rows) are gathered into blocks of about this many characters before they are sent.
BLOCK_CHARS = 1 << 16


@dataclass(frozen=True)
class ExportCaps:
    """How long an export may stream and how long one row may be (query_stream.py explains why)."""

    timeout_s: float | None = None
    max_row_bytes: int | None = None

    @property
    def chunk_rows(self) -> int:
        if self.max_row_bytes is None:
            return FETCH_CHUNK
        return max(1, min(FETCH_CHUNK, CHUNK_BYTES // self.max_row_bytes))


def _select(warehouse: Warehouse, table: str, limit: int | None) -> str:
    return f"SELECT * FROM {warehouse.quote(table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")  # noqa: S608 (table quoted, limit an int)


def _chunks(warehouse: Warehouse, table: str, limit: int | None,
            caps: ExportCaps) -> Iterator[tuple[list[str], list[Any]]]:
    with warehouse.readonly(caps.timeout_s, caps.max_row_bytes) as cur:
        guarded = warehouse.backend == "postgresql" and caps.max_row_bytes is not None
        sql = _select(warehouse, table, limit)
        cur.execute(pg_guarded(sql, caps.max_row_bytes) if guarded and caps.max_row_bytes else sql)
        columns = [d[0] for d in cur.description]
        if guarded and columns[-1] == GUARD_COLUMN:
            columns = columns[:-1]
        first = True
        while True:
            rows = cur.fetchmany(caps.chunk_rows)
            if guarded:
                rows = [row[:-1] for row in rows]
            if not rows and not first:
                return
            first = False
            yield columns, rows
            if not rows:
                return


def export_csv(warehouse: Warehouse, table: str, limit: int | None = None,
               caps: ExportCaps | None = None) -> Iterator[bytes]:
    """Header, then one encoded block per fetched chunk: at most one chunk of rows is held at once. An export
    cut by its deadline or a row past the cap ends with a line `# error: ...`."""
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer)
    header = False
    try:
        for columns, rows in _chunks(warehouse, table, limit, caps or ExportCaps()):
            if not header:
                write_row(writer, columns)
                header = True
            for row in rows:
                write_row(writer, row)
            if buffer.tell() >= BLOCK_CHARS or len(rows) == FETCH_CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    except ApiError as exc:
        yield f"{buffer.getvalue()}# error: {exc.detail}\r\n".encode()
        return
    if buffer.tell():
        yield buffer.getvalue().encode()


class _Sink(io.RawIOBase):
    """A write-only file that hands what Parquet wrote so far to the response, then forgets it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _schema(columns: list[str], rows: list[Any]) -> pa.Schema:
    """Column types from the first chunk; a column that is all NULL there is typed string."""
    table = pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows]) if rows else None
    fields = []
    for index, name in enumerate(columns):
        kind = table.schema.field(index).type if table is not None else pa.string()
        fields.append(pa.field(name, pa.string() if pa.types.is_null(kind) else kind))
    return pa.schema(fields)


def export_parquet(warehouse: Warehouse, table: str, limit: int | None = None,
                   caps: ExportCaps | None = None) -> Iterator[bytes]:
    """One row group per fetched chunk, streamed as written; the footer comes last. A Parquet file has no
    place for an error: an export cut by its deadline or the row cap ends without its footer (unreadable),
    never as a valid file missing rows."""
    sink = _Sink()
    writer: pq.ParquetWriter | None = None
    try:
        for columns, rows in _chunks(warehouse, table, limit, caps or ExportCaps()):
            if writer is None:
                schema = _schema(columns, rows)
                writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema)
            data = {name: [r[i] for r in rows] for i, name in enumerate(columns)}
            writer.write_table(pa.Table.from_pydict(data, schema=writer.schema))
            yield sink.drain()
    finally:
        if writer is not None:
            writer.close()
    yield sink.drain()
