"""Incremental state stored in the destination itself, so it commits in the same transaction as the rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import sqlalchemy as sa

STATE_TABLE = "_aggregator_state"

_metadata = sa.MetaData()
state_table = sa.Table(
    STATE_TABLE,
    _metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    # JSON as text: the same on every dialect, and state is tiny.
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


_known: set[str] = set()  # engines (by URL) whose state table was seen committed: skip a catalog query


def ensure_table(conn: sa.Connection) -> None:
    url = conn.engine.url.render_as_string(hide_password=True)
    if url in _known:
        return
    if sa.inspect(conn).has_table(STATE_TABLE):
        _known.add(url)  # it existed before this transaction, so a rollback cannot remove it
    else:
        state_table.create(conn)


def lock_id(key: str) -> int:
    """A stable signed 64-bit number for `key`: PostgreSQL advisory locks are named by bigints."""
    return int.from_bytes(hashlib.sha256(f"aggregator.state:{key}".encode()).digest()[:8], "big", signed=True)


def prepare_lock(engine: sa.Engine, key: str) -> None:
    """Make sure `key` has a row that `lock` can hold, committed on its own before the load's transaction.

    Only dialects without a lock of their own need it: a `SELECT … FOR UPDATE` of a row that does not exist
    locks nothing, so the first two loads of a stream would both start from no state."""
    if engine.dialect.name in ("postgresql", "sqlite"):
        return
    with engine.begin() as conn:
        if conn.execute(sa.select(state_table.c.key).where(state_table.c.key == key)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(state_table).values(key=key, state="null", updated_at=_now()))
            except sa.exc.IntegrityError:
                pass  # another load inserted it first: the row exists, which is all we need


def lock(conn: sa.Connection, key: str) -> None:
    """Hold the load lock of `key` until `conn`'s transaction ends, before its state is read.

    Two loads of the same stream then run one after the other, the second starting from the state the first
    committed: overlapping runs can neither load the same rows twice nor move the cursor past rows they did not
    load. PostgreSQL: a transaction-scoped advisory lock (it exists before the state row does). SQLite: the
    destination's engine begins every transaction with BEGIN IMMEDIATE, which already holds the database's write
    lock. Other dialects: the state row, created beforehand by `prepare_lock`, locked FOR UPDATE. MySQL loads
    never come here: their DDL would end the transaction and with it a row lock, so they hold a named lock for
    the whole load instead (staged.py)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id(key)})
    elif dialect != "sqlite":
        conn.execute(sa.select(state_table.c.key).where(state_table.c.key == key).with_for_update())


def read(conn: sa.Connection, key: str) -> dict[str, Any] | None:
    """The committed state for `key` (None before the first load; `prepare_lock`'s placeholder reads as None)."""
    text = conn.execute(sa.select(state_table.c.state).where(state_table.c.key == key)).scalar_one_or_none()
    return None if text is None else json.loads(text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def write(conn: sa.Connection, key: str, state: dict[str, Any]) -> None:
    values = {"state": json.dumps(state, sort_keys=True), "updated_at": _now()}
    updated = conn.execute(sa.update(state_table).where(state_table.c.key == key).values(**values))
    if updated.rowcount == 0:
        conn.execute(sa.insert(state_table).values(key=key, **values))
