"""A read-only role for the spec store: what code servers, run pods and the worker connect as in production.

The spec store's tables live in the platform database next to the proxy's users, sessions and tokens, so a
reader gets SELECT on exactly the store's tables (and the schema version, so it sees the schema is current and
tries no migration), never a database-wide grant. The tables exist only once the platform database has been
migrated, which is why the grant is given by whoever migrates it with the owner's role (`specs apply`).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.specstore.tables import files, revisions

_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")


class GrantError(ValueError):
    """A read-only role the spec store cannot grant (bad name, not PostgreSQL)."""


def check_reader(engine: Engine, role: str) -> None:
    """Raise GrantError unless `role` can be granted read access to the store in `engine`."""
    if not _ROLE.fullmatch(role):
        raise GrantError(f"role name {role!r} is not a plain PostgreSQL role name (letters, digits, '_', '$', '-'; "
                         "at most 63 characters, not starting with a digit)")
    if engine.dialect.name != "postgresql":
        raise GrantError(f"a read-only role needs the spec store on PostgreSQL, not {engine.dialect.name}: "
                         "on SQLite every process that can open the file can write it")


def grant_read(engine: Engine, role: str) -> None:
    """Give `role` SELECT on the spec store's tables (idempotent); raises GrantError naming what is wrong."""
    check_reader(engine, role)
    from aggregator.proxy.storage.db import schema_version  # lazily, as current.py: the known package cycle

    quote = engine.dialect.identifier_preparer.quote
    tables = (schema_version.name, revisions.name, files.name)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"GRANT SELECT ON {', '.join(quote(t) for t in tables)} TO {quote(role)}"))
    except sa.exc.ProgrammingError as exc:  # no such role, or this role does not own the tables
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise GrantError(f"could not let role {role!r} read the spec store: {detail} (create the role first, and "
                         "apply as the role that owns the platform database: docs/deploy.md)") from exc
