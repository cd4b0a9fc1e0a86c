"""A table's columns and SQLAlchemy types, in one catalog query on PostgreSQL.

SQLAlchemy's inspector reflects PostgreSQL columns with three queries (columns, domains, enums). A re-sync
with nothing new is a handful of round trips, so sources and the destination reflect through here."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

Columns = list[tuple[str, sa.types.TypeEngine[Any]]]

_PG_COLUMNS = (
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typtype "
    "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
    "WHERE c.relname = %(table)s AND n.nspname = COALESCE(%(schema)s, current_schema()) "
    "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


def reflect_columns(conn: sa.Connection, table: str, schema: str | None = None) -> Columns | None:
    """(name, type) of `table`'s columns in order, or None if there is no such table or view."""
    if conn.dialect.name == "postgresql":
        found = _postgres(conn, table, schema)
        if found is not False:
            return found
    try:
        return [(c["name"], c["type"]) for c in sa.inspect(conn).get_columns(table, schema)]
    except sa.exc.NoSuchTableError:
        return None


def _postgres(conn: sa.Connection, table: str, schema: str | None) -> Columns | None | Literal[False]:
    """Columns of base types only (what loads create, what most sources hold); False for a table with a domain
    or enum column, which the inspector then reflects (it resolves those)."""
    reflect_type = getattr(conn.dialect, "_reflect_type", None)  # SQLAlchemy 2.0's own format_type parser
    if reflect_type is None:
        return False
    rows = conn.exec_driver_sql(_PG_COLUMNS, {"table": table, "schema": schema}).all()
    if not rows:
        return None
    if any(typtype != "b" for _, _, typtype in rows):
        return False
    return [(name, reflect_type(fmt, {}, {}, type_description=f"column '{name}'", collation=None))
            for name, fmt, _ in rows]
