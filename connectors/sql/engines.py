"""One pooled SQLAlchemy engine per URL per process, with the dialect fixes loads rely on.

Lifecycle: `engine_for` creates an engine the first time a URL is used and keeps it (resources are rebuilt per
run; pools should not be). At most `MAX_ENGINES` are kept: the least recently used one is disposed (its pooled
connections closed) when another takes its place, and every engine is disposed at interpreter exit or by
`dispose_engines()`. A dropped engine is never left to the garbage collector with connections open."""

from __future__ import annotations

import atexit
import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

# What a spec's connection may not reach: "connection" the platform's databases, "source" its warehouse too.
Egress = Literal["source", "connection"]

import sqlalchemy as sa

MAX_ENGINES = 32

# Plain scheme -> the driver this project installs and tests (SQLAlchemy's own defaults differ).
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here: the COPY fast path and server-side cursors are written for it
    (SQLAlchemy 2.0 would otherwise pick psycopg2). `mysql://`/`mariadb://` mean PyMySQL (pure Python; SQLAlchemy
    would pick mysqlclient, a C extension that is not installed)."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername in _DEFAULT_DRIVERS:
        return parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername]).render_as_string(hide_password=False)
    return url


def deny_attach(action: int, *_args: Any) -> int:
    """A sqlite3 authorizer refusing ATTACH: a reader's SQL stays in the database it was opened on."""
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


class _Engines:
    """The process's engines by (URL, writer), least recently used first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._engines: OrderedDict[tuple[str, bool, Egress | None], sa.Engine] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, writer: bool, egress: Egress | None) -> sa.Engine:
        key = (url, writer, egress)
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None:
                self._engines.move_to_end(key)
                return engine
            engine = self._engines[key] = _create(url, writer, egress)
            dropped = [self._engines.popitem(last=False)[1] for _ in range(len(self._engines) - self.size)]
        for old in dropped:
            # Connections checked out by a load still running are closed when it returns them.
            old.dispose()
        return engine

    def dispose_all(self) -> None:
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.dispose()


_ENGINES = _Engines(MAX_ENGINES)
atexit.register(_ENGINES.dispose_all)


def engine_for(url: str, *, writer: bool = False, egress: Egress | None = None) -> sa.Engine:
    """The engine for `url`. `writer=True` (destinations) on SQLite takes the write lock when a transaction
    begins and uses WAL; sources never do, so reading a database never writes to it. `egress` (a connection
    from a spec) checks every new connection's server against the platform's databases (egress.py)."""
    return _ENGINES.get(url, writer, egress)


def dispose_engines() -> None:
    """Close every cached engine's pooled connections (tests, and a process about to fork or exit)."""
    _ENGINES.dispose_all()


def _peer(dbapi_connection: Any) -> tuple[str | None, int | None, str]:
    """(address, port, database) of the server a DB-API connection reached; address None for a Unix socket."""
    info = getattr(dbapi_connection, "info", None)
    if info is not None and hasattr(info, "hostaddr"):  # psycopg 3: libpq's PQhostaddr
        return info.hostaddr or None, int(info.port), info.dbname
    sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL keeps the socket it connected
    peer = sock.getpeername() if sock is not None else None
    database = dbapi_connection.db.decode() if isinstance(dbapi_connection.db, bytes) else dbapi_connection.db
    if isinstance(peer, tuple):
        return str(peer[0]), int(peer[1]), database or ""
    return None, int(getattr(dbapi_connection, "port", 0) or 0) or None, database or ""


def _check_peers(engine: sa.Engine, backend: str, egress: Egress) -> None:
    from connectors.egress import check_sql_peer

    @sa.event.listens_for(engine, "connect")
    def _platform_databases_refused(dbapi_connection: Any, _record: Any) -> None:
        # The URL was checked by name before the engine was made; the driver resolves the name again for
        # each connection, and a second answer (DNS rebinding) must not reach a platform database.
        address, port, database = _peer(dbapi_connection)
        try:
            check_sql_peer(backend, address, port, database, "url", source=egress == "source")
        except BaseException:
            dbapi_connection.close()
            raise


def _create(url: str, writer: bool, egress: Egress | None = None) -> sa.Engine:
    url = normalize_url(url)
    parsed = sa.engine.make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
        from connectors.sql.mysql import connect_args

        engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args(writer))
        if egress is not None:
            _check_peers(engine, backend, egress)
        return engine
    if backend != "sqlite":
        engine = sa.create_engine(url, pool_pre_ping=True)
        if egress is not None and backend == "postgresql":
            _check_peers(engine, backend, egress)
        return engine
    if parsed.database not in (None, "", ":memory:"):
        # A fresh AGGREGATOR_HOME has no directory yet; SQLite creates the file but not its parents.
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # A long load holds the write lock; other writers wait for it rather than fail.
    engine = sa.create_engine(url, connect_args={"timeout": 300 if writer else 30})

    # pysqlite only opens a transaction before INSERT/UPDATE/DELETE, so CREATE/ALTER/DROP would run outside
    # it and a killed load could leave half-applied DDL. SQLAlchemy's documented recipe: let SQLAlchemy
    # issue BEGIN itself, so every statement of a load is in one transaction.
    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    if not writer:

        @sa.event.listens_for(engine, "connect")
        def _no_attach(dbapi_connection: Any, _record: Any) -> None:
            # A source's query could otherwise ATTACH any file the process can read (the data-root rule
            # checks only the URL's own file).
            dbapi_connection.set_authorizer(deny_attach)

    if writer:

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            # Readers (checks, transforms of other runs) no longer block a load, nor a load them.
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    # Loads read (schema, state) before they write. Two deferred transactions doing that deadlock, and SQLite
    # fails one at once with "database is locked" without waiting (seen with parallel asset steps).
    # BEGIN IMMEDIATE takes the write lock up front, so concurrent loads queue on the busy timeout instead.
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine
