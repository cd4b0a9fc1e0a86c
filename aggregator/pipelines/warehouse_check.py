"""`aggregator validate --warehouse`: prepare every transform's SQL against the warehouse as it is now."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Graph, Node, destination_key
from aggregator.pipelines.load import SpecError
from aggregator.pipelines.transform_errors import Probe, database_message, explain_probe, locate
from aggregator.pipelines.transform_sql import transform_sql
from connectors.sql.engines import engine_for


def _ordered(nodes: list[Node]) -> list[Node]:
    """Upstreams before downstreams (the graph is acyclic once loaded)."""
    done: dict[int, Node] = {}

    def visit(node: Node) -> None:
        if id(node) in done:
            return
        for upstream in node.upstream.values():
            visit(upstream)
        done[id(node)] = node

    for node in nodes:
        visit(node)
    return list(done.values())


@contextmanager
def _session(destination: SqlDestination) -> Iterator[tuple[sa.Connection, Probe]]:
    """A read-only session whose every change (temporary views) is rolled back."""
    engine = engine_for(destination.url)  # the reader engine: no write lock, no WAL switch
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn, explain_probe(conn)
        finally:
            transaction.rollback()
            if not destination.rules.transactional_ddl:
                # MySQL's shadows are TEMPORARY tables, which no rollback removes: ending the session does, so
                # the pool never hands a session whose tables hide real ones to a load or a transform.
                conn.invalidate()


def check_warehouse(graph: Graph, resources: dict[str, Any]) -> tuple[list[SpecError], list[SpecError]]:
    """Every transform prepared (EXPLAIN) against its destination; nothing is written or run.

    Transforms are checked upstream first; each checked one becomes a temporary view under its table name,
    so a downstream transform is checked against the columns the new definition would produce. Returns the
    errors and what could not be checked: a pipeline that has never run has no tables yet, which is not an
    error (a pull request that adds a pipeline must be able to pass `validate --warehouse` in CI).
    """
    errors: list[SpecError] = []
    unchecked: list[SpecError] = []
    by_destination: dict[str, list[Node]] = {}
    for node in graph.nodes.values():
        by_destination.setdefault(node.pipeline.destination, []).append(node)
    for dest, nodes in by_destination.items():
        destination: SqlDestination = resources[destination_key(dest)]
        url = sa.engine.make_url(destination.url)
        if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
            # Connecting would create an empty database file: a check must not write anything.
            first = nodes[0]
            unchecked.append(first.file.error(first.loc[:2], f"destination {dest!r} ({destination.display_url}) does "
                                              "not exist yet; materialize the sources so the transforms can be checked"))
            continue
        try:
            with _session(destination) as (conn, probe):
                found, missing = _check_nodes(_ordered(nodes), destination, conn, probe)
                errors.extend(found)
                unchecked.extend(missing)
        except sa.exc.DBAPIError as exc:
            first = nodes[0]
            errors.append(first.file.error(first.loc[:2], f"cannot check against destination {dest!r} "
                                           f"({destination.display_url}): {database_message(exc)}"))
    return errors, unchecked


def _check_nodes(
    nodes: list[Node], destination: SqlDestination, conn: sa.Connection, probe: Probe
) -> tuple[list[SpecError], list[SpecError]]:
    errors: list[SpecError] = []
    unchecked: list[SpecError] = []
    unavailable: set[int] = set()
    inspector = sa.inspect(conn)
    for node in nodes:
        if any(id(u) in unavailable for u in node.upstream.values()):
            unavailable.add(id(node))
            continue
        if node.is_source:
            if not inspector.has_table(node.table):
                unchecked.append(node.file.error(node.loc, f"source {node.key.to_user_string()}: table {node.table} "
                                                 f"does not exist in {destination.display_url} yet; materialize it so "
                                                 "the transforms reading it can be checked"))
                unavailable.add(id(node))
            continue

        try:
            sql = transform_sql(node, destination, conn=conn)
            probe(sql)
        except (sa.exc.DBAPIError, ValueError) as exc:
            error, fragment = locate(node, destination, exc, probe, conn=conn)
            errors.append(type(error)(error.file, error.line, error.field, f"{error.message} (in: {fragment})"))
            unavailable.add(id(node))
            continue
        view = destination.rules.shadow_sql(destination.quote(node.table), sql)
        if conn.dialect.name == "postgresql":
            with conn.begin_nested():
                conn.execute(sa.text(view))
        else:
            conn.execute(sa.text(view))
    return errors, unchecked
