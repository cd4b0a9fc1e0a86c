"""A real MariaDB/MySQL for tests: AGGREGATOR_TEST_MYSQL_URL, else the server on 127.0.0.1:3306 (root, no password).

There is no embedded fallback as for PostgreSQL: development machines and CI run MariaDB, so a missing server
fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

DEFAULT_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def admin_url() -> str:
    return os.environ.get("AGGREGATOR_TEST_MYSQL_URL", DEFAULT_ADMIN_URL)


@contextmanager
def temporary_database() -> Iterator[str]:
    """The SQLAlchemy URL of a fresh utf8mb4 database, dropped afterwards."""
    name = f"agg_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url(), connect_args={"connect_timeout": 10})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        try:
            yield sa.engine.make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        engine.dispose()


def lock_waiters(url: str) -> int:
    """Sessions of the server at `url` waiting in GET_LOCK: loads queued behind another load of their stream."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock'")).scalar_one())
    finally:
        engine.dispose()
