"""Row counts of loaded tables, kept by the loads themselves (in their transaction) so a load reports the
table's size without a `COUNT(*)` that grows with the table.

A count is known once a load created or counted the table; after that each load adds what it inserted
(append, merge) or sets what it wrote (replace). A table rebuilt by a transform is forgotten and counted
again by its next load. Only writes outside the platform (manual SQL) can make a stored count stale."""

from __future__ import annotations

import sqlalchemy as sa

COUNTS_TABLE = "_aggregator_tables"

_metadata = sa.MetaData()
counts_table = sa.Table(
    COUNTS_TABLE,
    _metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
)

def stored(conn: sa.Connection, table: str) -> int | None:
    """The count the last load of `table` left, or None if no load has counted it."""
    # Plain text: a fresh process compiles every statement once, and this one runs on every load.
    value = conn.execute(sa.text(f"SELECT row_count FROM {COUNTS_TABLE} WHERE name = :name"),
                         {"name": table}).scalar_one_or_none()
    return None if value is None else int(value)


def record(conn: sa.Connection, table: str, *, count: int, delta: int | None) -> int:
    """Store the table's count and return it. With `delta` (an append or merge into a table whose count was
    known or counted before the load started), the stored value is incremented, so loads committing
    concurrently into the same table each add their own rows; without, `count` is set (a new or replaced table)."""
    insert = sa.text(
        f"INSERT INTO {COUNTS_TABLE} (name, row_count) VALUES (:name, :count) ON CONFLICT (name) DO UPDATE SET "
        + ("row_count = " + COUNTS_TABLE + ".row_count + :delta" if delta is not None else "row_count = :count")
        + " RETURNING row_count"
    )
    params: dict[str, object] = {"name": table, "count": count}
    if delta is not None:
        params["delta"] = delta
    return int(conn.execute(insert, params).scalar_one())


def forget(conn: sa.Connection, table: str) -> None:
    """`table` was rebuilt by something other than a load: its next load counts it."""
    if sa.inspect(conn).has_table(COUNTS_TABLE):
        conn.execute(sa.delete(counts_table).where(counts_table.c.name == table))
