"""Incremental state stored in the destination itself, so it commits in the same transaction as the rows."""

from __future__ import annotations

import datetime as dt
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


def read(conn: sa.Connection, key: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The committed state for `key`. With `lock`, PostgreSQL holds the row until the transaction ends,
    so two loads of the same stream serialize instead of both starting from the same state."""
    query = sa.select(state_table.c.state).where(state_table.c.key == key)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    text = conn.execute(query).scalar_one_or_none()
    return None if text is None else json.loads(text)


def write(conn: sa.Connection, key: str, state: dict[str, Any]) -> None:
    values = {"state": json.dumps(state, sort_keys=True), "updated_at": dt.datetime.now(dt.UTC).replace(tzinfo=None)}
    updated = conn.execute(sa.update(state_table).where(state_table.c.key == key).values(**values))
    if updated.rowcount == 0:
        conn.execute(sa.insert(state_table).values(key=key, **values))
