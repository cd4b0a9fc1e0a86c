"""SQL tables of the proxy (users, sessions, tokens, audit) and their migrations.

SQLite under AGGREGATOR_HOME by default, PostgreSQL in production: the same SQLAlchemy URL style as
Dagster's storage. Migrations are numbered steps recorded in `proxy_schema_version`; each runs once, in
order, inside a transaction, so an upgraded proxy brings an old database forward on start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.specstore import tables as spec_tables

log = logging.getLogger(__name__)

metadata = sa.MetaData()

schema_version = sa.Table(
    "proxy_schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.Float, nullable=False),
)

users = sa.Table(
    "proxy_users", metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=True),  # NULL: OIDC-only user
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("scope", sa.Text, nullable=True),  # JSON list of asset groups / jobs; NULL = everything
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("source", sa.String(20), nullable=False, default="local"),
    sa.Column("created_at", sa.Float, nullable=False),
)

sessions = sa.Table(
    "proxy_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),  # sha256 of the cookie value, never the value
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("scope", sa.Text, nullable=True),
    sa.Column("via", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
)

tokens = sa.Table(
    "proxy_api_tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("scope", sa.Text, nullable=True),
    sa.Column("description", sa.String(500), nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("last_used", sa.Float, nullable=True),
)

audit = sa.Table(
    "proxy_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("username", sa.String(200), nullable=True, index=True),
    sa.Column("role", sa.String(20), nullable=True),
    sa.Column("source_ip", sa.String(64), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("operation", sa.Text, nullable=True),
    sa.Column("targets", sa.Text, nullable=True),  # JSON
    sa.Column("decision", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
)

# Failed sign-ins per (kind, key), shared by every proxy replica (storage/login_failures.py).
login_failures = sa.Table(
    "proxy_login_failures", metadata,
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
)

# Idempotency keys of triggers, claimed atomically by whichever replica sees the key first
# (storage/idempotency.py).
idempotency_keys = sa.Table(
    "proxy_idempotency_keys", metadata,
    sa.Column("key", sa.String(450), primary_key=True),  # "<user>:<Idempotency-Key>"
    sa.Column("claimed_at", sa.Float, nullable=False, index=True),
    sa.Column("run_id", sa.String(64), nullable=True),
)

# GraphQL rate-limit windows per user or token, shared by every replica (storage/rate_windows.py).
rate_windows = sa.Table(
    "proxy_rate_windows", metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
)

# Uploads staged in object storage (proxy/uploads/s3.py): one row per upload in progress, one per accepted chunk,
# one per delivered file still counting against its uploader, and a one-row table whose UPDATE serializes
# admissions (a row lock on PostgreSQL, the write lock on SQLite) so two replicas cannot overbook a quota.
uploads = sa.Table(
    "proxy_uploads", metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("filename", sa.String(200), primary_key=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("total", sa.BigInteger, nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("final_key", sa.Text, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # staging | delivering
    sa.Column("claimed_at", sa.Float, nullable=True),  # delivering: when the deliverer last renewed its claim
)

upload_chunks = sa.Table(
    "proxy_upload_chunks", metadata,
    sa.Column("upload_id", sa.String(32), primary_key=True),
    sa.Column("first", sa.BigInteger, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
)

uploads_delivered = sa.Table(
    "proxy_uploads_delivered", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("final_key", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.Float, nullable=False),
)

upload_admissions = sa.Table(
    "proxy_upload_admissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)


# Saved queries and dashboards of the Console's Analytics page (storage/saved.py): each row belongs to one user,
# names are unique per user. A dashboard's `items` is a JSON list of {query_id, chart}.
saved_queries = sa.Table(
    "proxy_saved_queries", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("row_limit", sa.Integer, nullable=False),
    sa.Column("chart", sa.Text, nullable=True),  # JSON
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("username", "name", name="uq_proxy_saved_queries_name"),
)

dashboards = sa.Table(
    "proxy_dashboards", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("items", sa.Text, nullable=False),  # JSON
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("username", "name", name="uq_proxy_dashboards_name"),
)


def _v1_initial(conn: Connection) -> None:
    for table in (users, sessions, tokens, audit):
        table.create(conn, checkfirst=True)


def _v2_audit_decision_index(conn: Connection) -> None:
    # Plain DDL, not an `sa.Index` on the table: that would also be created by step 1 on fresh databases.
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_proxy_audit_decision ON proxy_audit (decision)"))


def _v3_login_failures(conn: Connection) -> None:
    login_failures.create(conn, checkfirst=True)


def _v4_idempotency_keys(conn: Connection) -> None:
    idempotency_keys.create(conn, checkfirst=True)


def _v5_rate_windows(conn: Connection) -> None:
    rate_windows.create(conn, checkfirst=True)


def _v6_spec_store(conn: Connection) -> None:
    spec_tables.create(conn)


def _v7_object_uploads(conn: Connection) -> None:
    for table in (uploads, upload_chunks, uploads_delivered, upload_admissions):
        table.create(conn, checkfirst=True)
    conn.execute(upload_admissions.insert().values(id=1, seq=0))


def _v8_saved_queries(conn: Connection) -> None:
    for table in (saved_queries, dashboards):
        table.create(conn, checkfirst=True)


# Append only: a released step is never edited, a change is a new step.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_audit_decision_index, _v3_login_failures,
                                                   _v4_idempotency_keys, _v5_rate_windows, _v6_spec_store,
                                                   _v7_object_uploads, _v8_saved_queries]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Uvicorn serves from several threads (the store runs in a thread pool).
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            # WAL: token and session look-ups are not blocked while audit rows are committed, and a commit
            # costs one WAL append instead of a rollback-journal round trip (a flood of refusals is audited).
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Bring the schema to the newest version; returns it."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
        for number, step in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            step(conn)
            conn.execute(schema_version.insert().values(version=number, applied_at=time.time()))
            log.info("proxy db migrated to version %d (%s)", number, step.__name__)
    return len(MIGRATIONS)
