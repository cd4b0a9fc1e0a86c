"""Query results and exports as streams: rows encoded as they are fetched, under a byte cap, in a bounded pool.

Three viewers asking for 300 MB values once took the proxy from 0.3 to 2.3 GB: the answer was built whole in
memory and the limit counted rows, not bytes. Now a query runs on a pool of its own (`QuerySlots`: at most
`query_concurrency` at once per process and `query_per_user` per user, beyond that 503/429 with Retry-After,
so queries never take the threads audit writes and look-ups need), its first rows are fetched before the
answer starts (an error there is still a proper status), and the rest is fetched a chunk at a time, each
chunk at most `CHUNK_BYTES` (rows of at most `max_row_bytes`, a cap the database enforces) and encoded
at once. Past `max_response_bytes` (or the deadline, once the answer started) the stream ends with a
clear error: a JSON answer closes with `"truncated": true, "error": "..."`, a CSV answer with a last line
`# error: ...`.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from aggregator.proxy.api import csv_safe
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.export import ParquetEncoder
from aggregator.proxy.api.slots import Slots, SlotsFull
from aggregator.proxy.api.warehouse import GUARD_COLUMN, Cursor, Warehouse, pg_guarded
from connectors.values import json_value

# Memory of one fetched chunk at most: rows per fetch are this over the row cap (at least 1).
CHUNK_BYTES = 64 << 20
MAX_CHUNK_ROWS = 10_000


class QuerySlots:
    """At most `size` queries and exports at once in this process, `per_user` for one user, on their own pool."""

    def __init__(self, size: int, per_user: int) -> None:
        self.size, self.per_user = size, per_user
        self.pool = ThreadPoolExecutor(size, "proxy-query")
        self._slots = Slots(size, per_user)

    def take(self, user: str) -> Callable[[], None]:
        """A slot for `user`, or ApiError 429 (this user has `per_user` running) / 503 (the process is full).
        Returns the function that gives it back (idempotent)."""
        try:
            return self._slots.take(user)
        except SlotsFull as full:
            if full.which == "user":
                raise ApiError(429, f"you already have {full.held} queries or exports running (limit "
                               "AGGREGATOR_API_QUERY_PER_USER); wait for one to finish", retry_after=2.0) from None
            raise ApiError(503, f"{self.size} queries or exports are running (limit "
                           "AGGREGATOR_API_QUERY_CONCURRENCY); retry shortly", retry_after=2.0) from None

    def running(self) -> int:
        return self._slots.held()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class OpenQuery:
    """A statement that ran and its first rows; the connection stays open until `close`."""

    columns: list[str]
    first: list[Any]
    cursor: Cursor
    chunk_rows: int
    drop_guard: bool
    stack: ExitStack = field(repr=False)

    def rows(self) -> Iterator[list[Any]]:
        """Every row, the first chunk first, one fetched chunk at a time (guard column dropped). A fetch that
        fails goes through the connection's context, which names it (QueryTimeout, ValueTooLarge)."""
        chunk = self.first
        while chunk:
            for row in chunk:
                yield list(row[:-1]) if self.drop_guard else list(row)
            try:
                chunk = self.cursor.fetchmany(self.chunk_rows)
            except BaseException:
                if not self.stack.__exit__(*sys.exc_info()):
                    raise
                return

    def close(self) -> None:
        self.stack.close()


def open_query(warehouse: Warehouse, sql: str, timeout_s: float | None, max_row_bytes: int) -> OpenQuery:
    """Run `sql` (already checked) read-only under the deadline and row cap; fetch the first chunk."""
    stack = ExitStack()
    try:
        cur = stack.enter_context(warehouse.readonly(timeout_s, max_row_bytes))
        guarded = warehouse.backend == "postgresql"
        cur.execute(pg_guarded(sql, max_row_bytes) if guarded else sql)
        columns = [d[0] for d in cur.description] if cur.description else []
        if guarded and columns and columns[-1] == GUARD_COLUMN:
            columns = columns[:-1]
        chunk_rows = max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // max_row_bytes))
        first = cur.fetchmany(chunk_rows)
        return OpenQuery(columns, first, cur, chunk_rows, guarded, stack)
    except BaseException:
        # Through the context managers, so that they name the error (QueryTimeout, ValueTooLarge).
        if not stack.__exit__(*sys.exc_info()):
            raise
        raise


class _Budget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.sent = max_bytes, 0

    def fits(self, data: bytes) -> bool:
        if self.sent + len(data) > self.max_bytes:
            return False
        self.sent += len(data)
        return True

    def message(self) -> str:
        return (f"the answer reached {self.max_bytes} bytes (limit AGGREGATOR_API_MAX_RESPONSE_BYTES) and was cut; "
                "select fewer rows or columns, or export the table")


def encode_json(query: OpenQuery, sql: str, row_limit: int, max_bytes: int) -> Iterator[bytes]:
    """`{"columns", "sql", "rows", "truncated"}` as a stream; `"error"` last when the answer was cut."""
    budget = _Budget(max_bytes)
    head = (json.dumps({"columns": query.columns, "sql": sql})[:-1] + ', "rows": [').encode()
    budget.fits(head)
    yield head
    count, error, truncated = 0, None, False
    try:
        for row in query.rows():
            if count == row_limit:
                truncated = True
                break
            data = (b"," if count else b"") + json.dumps([json_value(v) for v in row]).encode()
            if not budget.fits(data):
                error, truncated = budget.message(), True
                break
            count += 1
            yield data
    except ApiError as exc:  # the deadline or the row cap, after the answer started
        error, truncated = exc.detail, True
    tail = {"truncated": truncated} | ({"error": error} if error else {})
    yield ("], " + json.dumps(tail)[1:]).encode()


def encode_csv(query: OpenQuery, row_limit: int | None, max_bytes: int | None,
               write_row: Callable[[Any, list[Any]], None], say_truncated: bool = False) -> Iterator[bytes]:
    """Header and rows as CSV, encoded in blocks of about 64 KiB; a cut answer ends with `# error: ...`, and
    with `say_truncated` an answer stopped at `row_limit` ends with `# truncated: ...`."""
    budget = _Budget(max_bytes) if max_bytes is not None else None
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer)
    write_row(writer, query.columns)
    count, error = 0, None
    try:
        for row in query.rows():
            if row_limit is not None and count == row_limit:
                if say_truncated:
                    buffer.write(f"# truncated: the query has more rows than row_limit ({row_limit})\r\n")
                break
            write_row(writer, row)
            count += 1
            if buffer.tell() >= (1 << 16):
                data = buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
                if budget is not None and not budget.fits(data):
                    error = budget.message()
                    break
                yield data
    except ApiError as exc:
        error = exc.detail
    if error is None:
        data = buffer.getvalue().encode()
        if budget is None or budget.fits(data):
            yield data
            return
        error = budget.message()
    yield f"# error: {error}\r\n".encode()


def encode_parquet(query: OpenQuery, row_limit: int, max_bytes: int) -> Iterator[bytes]:
    """The result as Parquet, in row groups of fetched chunks (export.py's encoder), under the same row limit
    and byte cap. The footer's key-value metadata says `aggregator.truncated`: "true" when the query had more
    rows than `row_limit`. A Parquet file has no place for an error: an answer cut by the byte cap, the
    deadline or the row cap ends without its footer (unreadable), never as a valid file missing rows."""
    budget = _Budget(max_bytes)
    encoder = ParquetEncoder(query.columns)
    chunk: list[list[Any]] = []
    truncated = False
    for count, row in enumerate(query.rows()):
        if count == row_limit:
            truncated = True
            break
        chunk.append(row)
        if len(chunk) == query.chunk_rows:
            data = encoder.write(chunk)
            chunk = []
            if not budget.fits(data):
                return
            yield data
    data = (encoder.write(chunk) if chunk else b"") + encoder.finish({"aggregator.truncated": str(truncated).lower()})
    if budget.fits(data):
        yield data


class _Pump:
    """Steps `chunks` on the query pool, one step at a time: the clean-up waits for a running step, so a
    connection is never closed under a fetch, even when the client went away mid-fetch."""

    def __init__(self, chunks: Iterator[bytes], done: Callable[[], None]) -> None:
        self.chunks, self.done = chunks, done
        self.lock = threading.Lock()

    def step(self) -> bytes | None:
        with self.lock:
            return next(self.chunks, None)

    def finish(self) -> None:
        with self.lock:
            try:
                close = getattr(self.chunks, "close", None)
                if close is not None:
                    close()
            finally:
                self.done()


async def stream(slots: QuerySlots, chunks: Iterator[bytes], done: Callable[[], None]) -> AsyncIterator[bytes]:
    """`chunks` produced on the query pool; `done` (close the query, give the slot back) runs however the
    stream ends, client gone included, never while a fetch is running."""
    pump = _Pump(chunks, done)
    try:
        while True:
            chunk = await slots.run(pump.step)
            if chunk is None:
                return
            yield chunk
    finally:
        try:
            slots.pool.submit(pump.finish)
        except RuntimeError:  # the pool is shut down (the proxy is stopping)
            pump.finish()
