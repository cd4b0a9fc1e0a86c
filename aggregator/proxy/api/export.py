"""Streaming a warehouse table out as CSV or Parquet, one chunk of rows at a time (constant memory)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aggregator.proxy.api.warehouse import FETCH_CHUNK, Warehouse


def _select(warehouse: Warehouse, table: str, limit: int | None) -> str:
    return f"SELECT * FROM {warehouse.quote(table)}" + (f" LIMIT {int(limit)}" if limit is not None else "")


def _chunks(warehouse: Warehouse, table: str, limit: int | None,
            chunk_rows: int) -> Iterator[tuple[list[str], list[Any]]]:
    with warehouse.readonly(None) as cur:
        cur.execute(_select(warehouse, table, limit))
        columns = [d[0] for d in cur.description]
        first = True
        while True:
            rows = cur.fetchmany(chunk_rows)
            if not rows and not first:
                return
            first = False
            yield columns, rows
            if not rows:
                return


def export_csv(warehouse: Warehouse, table: str, limit: int | None = None,
               chunk_rows: int = FETCH_CHUNK) -> Iterator[bytes]:
    """Header, then one encoded block per fetched chunk: at most `chunk_rows` rows are held at once."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = False
    for columns, rows in _chunks(warehouse, table, limit, chunk_rows):
        if not header:
            writer.writerow(columns)
            header = True
        writer.writerows(rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


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
                   chunk_rows: int = FETCH_CHUNK) -> Iterator[bytes]:
    """One row group per fetched chunk, streamed as written; the footer comes last."""
    sink = _Sink()
    writer: pq.ParquetWriter | None = None
    try:
        for columns, rows in _chunks(warehouse, table, limit, chunk_rows):
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
