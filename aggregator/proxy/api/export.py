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
    """Column types from the first chunk; a column that is all NULL there is typed string, and a decimal
    gets the widest precision at the scale seen (later rows may hold larger numbers, never silently rounded)."""
    table = pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows]) if rows else None
    fields = []
    for index, name in enumerate(columns):
        kind = table.schema.field(index).type if table is not None else pa.string()
        if pa.types.is_null(kind):
            kind = pa.string()
        elif pa.types.is_decimal128(kind):
            kind = pa.decimal128(38, kind.scale)
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


# A row group is written when this many rows or bytes (Arrow's in-memory size) are gathered: fetched chunks
# are as small as 64 rows under the row cap, and the writer keeps every row group's metadata until the footer,
# so one row group per chunk made 300,000 rows cost 26 MiB more peak memory than 30,000, and a slow file.
ROW_GROUP_ROWS = 65_536
ROW_GROUP_BYTES = 8 << 20


class ParquetEncoder:
    """Rows to Parquet in row groups of at most ROW_GROUP_ROWS / ROW_GROUP_BYTES; `write` returns the bytes
    written so far (nothing is kept once returned but the pending row group). The footer, with optional
    key-value metadata, comes from `finish`."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.sink = _Sink()
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.pending_rows = self.pending_bytes = 0
        self.rows = 0

    def _writer(self, rows: list[Any]) -> pq.ParquetWriter:
        if self.writer is None:
            self.writer = pq.ParquetWriter(pa.PythonFile(self.sink, mode="w"), _schema(self.columns, rows))
        return self.writer

    def write(self, rows: list[Any]) -> bytes:
        writer = self._writer(rows)
        schema = writer.schema
        data = {name: [r[i] for r in rows] for i, name in enumerate(self.columns)}
        try:
            table = pa.Table.from_pydict(data, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ApiError(422, f"rows {self.rows + 1}-{self.rows + len(rows)} do not fit the Parquet column "
                           f"types taken from the first rows ({_types(schema)}): {str(exc).splitlines()[0][:200]}; "
                           "CAST the column in the query, or export CSV") from None
        self.pending.append(table)
        self.rows += len(rows)
        self.pending_rows += table.num_rows
        self.pending_bytes += table.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush(writer)
        return self.sink.drain()

    def _flush(self, writer: pq.ParquetWriter) -> None:
        if self.pending:
            writer.write_table(pa.concat_tables(self.pending), row_group_size=ROW_GROUP_ROWS)
            self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def finish(self, metadata: dict[str, str] | None = None) -> bytes:
        writer = self._writer([])
        self._flush(writer)
        if metadata:
            writer.add_key_value_metadata(metadata)
        writer.close()
        return self.sink.drain()


def _types(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)


def export_parquet(warehouse: Warehouse, table: str, limit: int | None = None,
                   caps: ExportCaps | None = None) -> Iterator[bytes]:
    """Row groups of fetched chunks (ParquetEncoder), streamed as written; the footer comes last. A Parquet file has no
    place for an error: an export cut by its deadline or the row cap ends without its footer (unreadable),
    never as a valid file missing rows."""
    encoder: ParquetEncoder | None = None
    for columns, rows in _chunks(warehouse, table, limit, caps or ExportCaps()):
        encoder = encoder or ParquetEncoder(columns)
        yield encoder.write(rows)
    if encoder is not None:
        yield encoder.finish()
