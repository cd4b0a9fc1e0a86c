"""One pooled SQLAlchemy engine per URL per process, with the dialect fixes loads rely on."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here: the COPY fast path and server-side cursors are written for it
    (SQLAlchemy 2.0 would otherwise pick psycopg2)."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


@lru_cache(maxsize=32)
def engine_for(url: str) -> sa.Engine:
    # Resources are rebuilt per run; pools should not be, so engines are cached per URL.
    url = normalize_url(url)
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    if parsed.database not in (None, "", ":memory:"):
        # A fresh AGGREGATOR_HOME has no directory yet; SQLite creates the file but not its parents.
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    # pysqlite only opens a transaction before INSERT/UPDATE/DELETE, so CREATE/ALTER/DROP would run outside
    # it and a killed load could leave half-applied DDL. SQLAlchemy's documented recipe: let SQLAlchemy
    # issue BEGIN itself, so every statement of a load is in one transaction.
    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine
