"""The SELECT a transform node compiles to for its destination's dialect: its SQL with `ref()`s resolved, or its
declarative steps rendered (shared by the asset, error location, `validate --warehouse` and previews)."""

from __future__ import annotations

import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node
from aggregator.pipelines.refs import render
from aggregator.pipelines.steps import render_steps


def transform_sql(
    node: Node, destination: SqlDestination, steps: int | None = None, conn: sa.Connection | None = None
) -> str:
    """The SELECT that builds `node`, for the destination's dialect (with only its first `steps` steps).
    Column lookups use `conn` when given (it may see temporary views), else a connection of their own."""
    spec = node.transform

    def table_for(ref: str) -> str:
        return destination.quote(node.upstream[ref].table)

    if spec.sql is not None:
        return render(spec.sql, table_for)

    def columns_of(sql: str) -> list[str]:
        query = sa.text(f"SELECT * FROM ({sql}) AS cols WHERE 1 = 0")  # noqa: S608 (the transform's own compiled SELECT, run with no rows)
        if conn is not None:
            if conn.dialect.name == "postgresql":
                with conn.begin_nested():  # a failed lookup must not abort the caller's transaction
                    return list(conn.execute(query).keys())
            return list(conn.execute(query).keys())
        with destination.engine.connect() as own:
            return list(own.execute(query).keys())

    return render_steps(
        f"SELECT * FROM {table_for(spec.from_ or '')}",  # noqa: S608 (table quoted by the dialect's preparer)
        spec.steps if steps is None else spec.steps[:steps],
        dialect=destination.dialect,
        quote=destination.quote,
        table_for=table_for,
        columns_of=columns_of,
    )
