"""connectors/sql/engines.py keeps one engine per URL and disposes the ones it drops (issue 20, item 7): an
evicted engine used to be left to the garbage collector with its pooled connections open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from connectors.sql.engines import MAX_ENGINES, dispose_engines, engine_for


def test_the_same_url_gets_the_same_engine(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert engine_for(url) is engine_for(url)
    assert engine_for(url, writer=True) is not engine_for(url)


def test_an_engine_dropped_from_the_cache_has_its_connections_closed(tmp_path: Path) -> None:
    first = engine_for(f"sqlite:///{tmp_path / 'first.db'}")
    with first.connect() as conn:
        raw = conn.connection.dbapi_connection  # returned to the pool, still open, when the block ends
    assert isinstance(raw, sqlite3.Connection)
    raw.execute("SELECT 1")
    for i in range(MAX_ENGINES):  # MAX_ENGINES newer URLs push the first one out
        engine_for(f"sqlite:///{tmp_path / f'other{i}.db'}")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        raw.execute("SELECT 1")
    assert engine_for(f"sqlite:///{tmp_path / 'first.db'}") is not first  # a fresh one when asked again


def test_dispose_engines_closes_every_pooled_connection(pg_db: object, tmp_path: Path) -> None:
    url = pg_db.sqlalchemy_url  # type: ignore[attr-defined]
    engine = engine_for(url)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
    assert raw is not None and not raw.closed  # type: ignore[attr-defined]
    dispose_engines()
    assert raw.closed  # type: ignore[attr-defined]
