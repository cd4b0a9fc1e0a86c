"""Read-only, time-limited access to the warehouse (SQLite or PostgreSQL) for queries and exports.

Raw DB-API connections, not pandas or an ORM: rows are fetched in chunks (a server-side cursor on
PostgreSQL) so a result or an export never sits whole in memory. Read-only is enforced by the database
(a `READ ONLY` transaction, SQLite opened with `mode=ro` and `query_only`), not only by the SQL guard.

The deadline is a watchdog thread, not only a check inside the database: SQLite's progress handler runs
between batches of VM steps, and one `format('%.*c', 100000000, 'x')` is one step (a 10 s limit answered
after 81 s); PostgreSQL's `statement_timeout` counts each FETCH of a server-side cursor on its own. At the
deadline the watchdog interrupts the statement (`sqlite3.Connection.interrupt`, psycopg's `cancel`), whatever
it is doing. The bytes of one value or row are capped by the database before they reach the proxy: SQLite's
`SQLITE_LIMIT_LENGTH`, and on PostgreSQL a guard column that fails the statement when a row's text is
longer than the cap. See query_stream.py for the response side.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from aggregator.proxy.api.errors import ApiError
from connectors.sql.engines import normalize_url

log = logging.getLogger(__name__)

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


class ValueTooLarge(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"a value or row of the result is larger than {max_bytes} bytes (limit "
                         "AGGREGATOR_API_MAX_ROW_BYTES); select fewer or shorter columns")


# The PostgreSQL guard: a row longer than the cap casts a text to int, which fails the statement with the
# text in the error (SQL has no RAISE); the column is NULL otherwise and dropped before encoding. The text
# includes the row's size so that it is not a constant: the planner folds constant casts even in a CASE
# branch never taken.
GUARD_COLUMN = "__aggregator_row_guard"
_PG_GUARD_TEXT = "bytes: row larger than the cap"


def pg_guarded(sql: str, max_bytes: int) -> str:
    """`sql` as a subquery with a guard column checking each row's size on the server."""
    size = "octet_length(q::text)"
    return (f"SELECT q.*, CASE WHEN {size} > {int(max_bytes)} THEN ({size}::text || ' {_PG_GUARD_TEXT}')::int "  # noqa: S608 (sql was regenerated from the checked tree)
            f"END AS {GUARD_COLUMN} FROM ({sql}) AS q")


class _Watchdog:
    """Calls `cancel` once at the deadline unless stopped first; never after `stop` returns."""

    def __init__(self, timeout_s: float | None, cancel: Callable[[], object]) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._cancel = cancel
        self._timer = threading.Timer(timeout_s, self._fire) if timeout_s is not None else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._timer is None:
                return
            self.fired = True
            try:
                self._cancel()
            except Exception:  # the connection may be closing: there is nothing left to stop
                log.debug("watchdog cancel failed", exc_info=True)

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class Warehouse:
    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.backend = self.url.get_backend_name()
        # Another backend must not stop the proxy from starting: only the data endpoints refuse (409).
        self.supported = self.backend in ("sqlite", "postgresql")
        self.dialect = "postgres" if self.backend == "postgresql" else "sqlite"
        # psycopg 3 as for loads (`normalize_url`): `postgresql://` would otherwise get psycopg2, which has no
        # `cancel_safe` for the watchdog below. NullPool: each read is its own short-lived session.
        self._engine = (sa.create_engine(normalize_url(self.url.render_as_string(hide_password=False)),
                                         poolclass=sa.pool.NullPool) if self.backend == "postgresql" else None)

    def quote(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    @contextmanager
    def readonly(self, timeout_s: float | None, max_row_bytes: int | None = None) -> Iterator[Cursor]:
        """A cursor in a read-only transaction, cancelled after `timeout_s` (None: exports, which run as long
        as the client reads), refusing values or rows longer than `max_row_bytes` (ValueTooLarge). On
        PostgreSQL, run the statement through `pg_guarded` for the row cap to apply."""
        if not self.supported:
            raise ApiError(409, f"the API reads SQLite or PostgreSQL warehouses, not {self.backend}")
        if self.backend == "sqlite":
            with self._sqlite(timeout_s, max_row_bytes) as cur:
                yield cur
            return
        if self._engine is None:
            raise RuntimeError(f"no engine for the {self.backend} warehouse")
        raw = self._engine.raw_connection()
        watchdog: _Watchdog | None = None
        try:
            conn: Any = raw.driver_connection
            conn.autocommit = False
            with conn.cursor() as setup:
                setup.execute("SET TRANSACTION READ ONLY")
                if timeout_s is not None:
                    # Per statement (DECLARE, each FETCH); the watchdog holds the whole query to the deadline.
                    setup.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
            watchdog = _Watchdog(timeout_s, conn.cancel_safe)
            # A named (server-side) cursor: rows come over in chunks of `itersize`, never all at once.
            cur = conn.cursor(name="aggregator_api")
            cur.itersize = FETCH_CHUNK
            try:
                yield cur
            except Exception as exc:
                kind = type(exc).__name__
                if kind == "QueryCanceled" and timeout_s is not None:
                    raise QueryTimeout(timeout_s) from None
                if kind == "InvalidTextRepresentation" and _PG_GUARD_TEXT in str(exc) and max_row_bytes:
                    raise ValueTooLarge(max_row_bytes) from None
                raise
            finally:
                watchdog.stop()
                try:
                    cur.close()
                finally:
                    conn.rollback()
        finally:
            if watchdog is not None:
                watchdog.stop()
            raw.close()

    @contextmanager
    def _sqlite(self, timeout_s: float | None, max_row_bytes: int | None) -> Iterator[Cursor]:
        database = self.url.database or ""
        if not database or database == ":memory:":
            raise ApiError(409, "the warehouse is an in-memory SQLite database; nothing to read")
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
        if max_row_bytes is not None:
            # Strings, blobs and rows longer than this fail inside SQLite ("string or blob too big") before
            # they are built: one expression can no longer make a 100 MB value.
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_row_bytes)
        watchdog = _Watchdog(timeout_s, conn.interrupt)
        try:
            conn.execute("PRAGMA query_only = 1")
            try:
                yield conn.cursor()
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc) and timeout_s is not None:
                    raise QueryTimeout(timeout_s) from None
                raise
            except sqlite3.DataError as exc:
                if "too big" in str(exc) and max_row_bytes is not None:
                    raise ValueTooLarge(max_row_bytes) from None
                raise
        finally:
            watchdog.stop()
            conn.close()
