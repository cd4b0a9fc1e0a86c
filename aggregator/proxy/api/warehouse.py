"""Read-only, time-limited access to the warehouse (SQLite or PostgreSQL) for queries and exports.

Raw DB-API connections, not pandas or an ORM: rows are fetched in chunks (a server-side cursor on
PostgreSQL) so a result or an export never sits whole in memory. Read-only is enforced by the database
(a `READ ONLY` transaction, SQLite opened with `mode=ro` and `query_only`), not only by the SQL guard.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from aggregator.proxy.api.errors import ApiError

FETCH_CHUNK = 10_000


class Cursor(Protocol):
    @property
    def description(self) -> Any: ...

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


class QueryTimeout(ApiError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"the query ran longer than {timeout_s:g}s and was cancelled; narrow it "
                         "(WHERE, LIMIT) or export the table instead")


class Warehouse:
    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.backend = self.url.get_backend_name()
        # Another backend must not stop the proxy from starting: only the data endpoints refuse (409).
        self.supported = self.backend in ("sqlite", "postgresql")
        self.dialect = "postgres" if self.backend == "postgresql" else "sqlite"
        self._engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool) if self.backend == "postgresql" else None

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @contextmanager
    def readonly(self, timeout_s: float | None) -> Iterator[Cursor]:
        """A cursor in a read-only transaction, cancelled after `timeout_s` (None: exports, which run as long
        as the client reads)."""
        if not self.supported:
            raise ApiError(409, f"the API reads SQLite or PostgreSQL warehouses, not {self.backend}")
        if self.backend == "sqlite":
            with self._sqlite(timeout_s) as cur:
                yield cur
            return
        assert self._engine is not None
        raw = self._engine.raw_connection()
        try:
            conn: Any = raw.driver_connection
            conn.autocommit = False
            with conn.cursor() as setup:
                setup.execute("SET TRANSACTION READ ONLY")
                if timeout_s is not None:
                    setup.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            # A named (server-side) cursor: rows come over in chunks of `itersize`, never all at once.
            cur = conn.cursor(name="aggregator_api")
            cur.itersize = FETCH_CHUNK
            try:
                yield cur
            except Exception as exc:
                if type(exc).__name__ == "QueryCanceled" and timeout_s is not None:
                    raise QueryTimeout(timeout_s) from None
                raise
            finally:
                try:
                    cur.close()
                finally:
                    conn.rollback()
        finally:
            raw.close()

    @contextmanager
    def _sqlite(self, timeout_s: float | None) -> Iterator[Cursor]:
        database = self.url.database or ""
        if not database or database == ":memory:":
            raise ApiError(409, "the warehouse is an in-memory SQLite database; nothing to read")
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
        if timeout_s is not None:
            deadline = time.monotonic() + timeout_s
            # Called every 10k VM steps; a non-zero return interrupts the statement ("interrupted").
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            conn.execute("PRAGMA query_only = 1")
            try:
                yield conn.cursor()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc) and timeout_s is not None:
                    raise QueryTimeout(timeout_s) from None
                raise
        finally:
            conn.close()
