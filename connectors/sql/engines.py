"""One pooled SQLAlchemy engine per URL per process, with the dialect fixes loads rely on."""

from __future__ import annotations

import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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


@lru_cache(maxsize=32)
def engine_for(url: str, *, writer: bool = False) -> sa.Engine:
    """The engine for `url`. `writer=True` (destinations) on SQLite takes the write lock when a transaction
    begins and uses WAL; sources never do, so reading a database never writes to it."""
    # Resources are rebuilt per run; pools should not be, so engines are cached per URL.
    url = normalize_url(url)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() in ("mysql", "mariadb") and parsed.get_driver_name() == "pymysql":
        from connectors.sql.mysql import connect_args

        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args())
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
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
