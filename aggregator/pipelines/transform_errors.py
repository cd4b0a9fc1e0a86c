"""Transform SQL problems pointed back at the spec: file, line, step and the SQL that failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from aggregator.destinations.dialects import rules_for
from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node
from aggregator.pipelines.load import SpecError
from aggregator.pipelines.transform_sql import transform_sql

Probe = Callable[[str], None]  # raises when the database cannot prepare the SELECT


def explain_probe(conn: sa.Connection) -> Probe:
    """Prepare `sql` without running it: the database resolves every table and column (EXPLAIN). On
    PostgreSQL each probe runs in a savepoint: one failed statement would otherwise abort the transaction."""
    postgres = conn.dialect.name == "postgresql"
    prefix = rules_for(conn.dialect.name).explain

    def probe(sql: str) -> None:
        if postgres:
            with conn.begin_nested():
                conn.execute(sa.text(f"{prefix} {sql}")).fetchall()
        else:
            conn.execute(sa.text(f"{prefix} {sql}")).fetchall()

    return probe


def database_message(exc: BaseException) -> str:
    """The database's own words, without SQLAlchemy's statement dump and background link."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return str(exc.orig).strip().splitlines()[0]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def step_label(step: Any) -> str:
    dumped = step.model_dump(by_alias=True, exclude_defaults=True)
    return json.dumps(dumped, default=str)


def locate(
    node: Node, destination: SqlDestination, exc: BaseException, probe: Probe, conn: sa.Connection | None = None
) -> tuple[SpecError, str]:
    """The spec location of a failing transform (its first failing step, found by preparing ever longer
    prefixes of the steps) and the SQL fragment to show."""
    spec = node.transform
    message = database_message(exc)
    if spec.sql is not None:
        return node.file.error((*node.loc, "sql"), f"transform {node.key.to_user_string()}: {message}"), spec.sql
    for count in range(1, len(spec.steps) + 1):
        try:
            probe(transform_sql(node, destination, steps=count, conn=conn))
        except (sa.exc.DBAPIError, ValueError) as step_exc:
            step = spec.steps[count - 1]
            kind = next(iter(type(step).model_fields))
            error = node.file.error(
                (*node.loc, "steps", count - 1),
                f"transform {node.key.to_user_string()}, step {count} ({kind}): {database_message(step_exc)}",
            )
            return error, f"step {count}: {step_label(step)}"
    return node.file.error((*node.loc, "from"), f"transform {node.key.to_user_string()}: {message}"), \
        f"from: {spec.from_}"
