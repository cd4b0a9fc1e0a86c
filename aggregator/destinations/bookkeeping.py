"""The platform's own tables in a warehouse (incremental state, row counts), created on first use."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_known: set[tuple[str, str]] = set()  # (engine URL, table) seen committed: skip the catalog query next time


def ensure_tables(conn: sa.Connection, tables: Sequence[sa.Table]) -> None:
    """Create whichever of `tables` do not exist yet, in the caller's transaction. One catalog query covers
    them all (a no-change re-sync is a handful of round trips; this was one per table)."""
    url = conn.engine.url.render_as_string(hide_password=True)
    wanted = [t for t in tables if (url, t.name) not in _known]
    if not wanted:
        return
    existing = set(sa.inspect(conn).get_table_names())
    for table in wanted:
        if table.name in existing:
            _known.add((url, table.name))  # it existed before this transaction, so a rollback cannot remove it
        else:
            table.create(conn)
