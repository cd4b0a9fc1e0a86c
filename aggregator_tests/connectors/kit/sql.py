"""The SQL connector's kit source: a table in a fresh MariaDB database, read by a user with a password."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from aggregator_tests.connectors.kit import KitSource, kit_row
from aggregator_tests.mariadb import temporary_database

# How the server may see a loopback client (by name, or by address with skip-name-resolve). Not '%': the
# driver's format paramstyle would read it as a placeholder.
HOSTS = ("localhost", "127.0.0.1")


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    with temporary_database() as admin_url:
        admin = sa.create_engine(admin_url)
        url = sa.engine.make_url(admin_url)
        user, password = f"kit_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(12)}"
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE kit_rows (id BIGINT PRIMARY KEY, name VARCHAR(64))")
                for host in HOSTS:
                    conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
                    conn.exec_driver_sql(f"GRANT SELECT ON {url.database}.* TO '{user}'@'{host}'")

            def add_rows(ids: range) -> None:
                table = sa.table("kit_rows", sa.column("id"), sa.column("name"))
                with admin.begin() as conn:
                    for start in range(ids.start, ids.stop, 10_000):
                        conn.execute(sa.insert(table), [kit_row(i) for i in range(start, min(start + 10_000, ids.stop))])

            add_rows(range(1, rows + 1))
            reader = url.set(username=user, password=password).render_as_string(hide_password=False)
            wrong_db = url.set(username=user, password=password, database="no_such_db").render_as_string(hide_password=False)
            closed = url.set(username=user, password=password, port=1).render_as_string(hide_password=False)
            yield KitSource(
                config={"url": {"env": "KIT_SQL_URL"}},
                stream={"type": "sql", "table": "kit_rows", "chunk_size": 500},
                incremental_stream={"type": "sql", "table": "kit_rows", "cursor_column": "id", "chunk_size": 500},
                add_rows=add_rows,
                environ={"KIT_SQL_URL": reader, "KIT_SQL_WRONG_DB": wrong_db, "KIT_SQL_CLOSED": closed},
                secrets=[password, reader],
                failing=[{"url": {"env": "KIT_SQL_WRONG_DB"}}, {"url": {"env": "KIT_SQL_CLOSED"}}],
            )
        finally:
            with admin.begin() as conn:
                for host in HOSTS:
                    conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
            admin.dispose()
