"""The platform's own tables in a warehouse (incremental state, row counts), created on first use."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_known: set[tuple[str, str]] = set()  # (engine URL, table) seen committed: skip the catalog query next time


def ensure_tables(engine: sa.Engine, tables: Sequence[sa.Table]) -> None:
    """Create whichever of `tables` do not exist yet, each committed in a short transaction of its own.

    Never inside a load's transaction: on PostgreSQL an uncommitted CREATE TABLE holds its catalog entry until
    that transaction ends, so a second load starting at the same time (parallel steps of one run) would block
    on it for the whole first load. One catalog query covers all the tables; a concurrent creator that wins the
    race is fine — the table exists either way."""
    url = engine.url.render_as_string(hide_password=True)
    wanted = [t for t in tables if (url, t.name) not in _known]
    if not wanted:
        return
    with engine.connect() as conn:
        existing = set(sa.inspect(conn).get_table_names())
    for table in wanted:
        if table.name not in existing:
            try:
                with engine.begin() as conn:
                    table.create(conn, checkfirst=True)
            except sa.exc.DBAPIError:
                # Another process created it between our check and our CREATE (PostgreSQL reports the race
                # as a unique violation on its catalog); anything else shows up again when the table is used.
                with engine.connect() as conn:
                    if not sa.inspect(conn).has_table(table.name):
                        raise
        _known.add((url, table.name))
