"""`POST /api/pipelines/{name}/transforms/{transform}/preview`: a transform run over previewed source rows.

The upstream sources are previewed (row limit, nothing read past it), loaded into a scratch SQLite database
in a temporary directory, upstream transforms are built there in dependency order, and the transform's
SELECT (the same SQL the asset runs, via `transform_sql`) is read back. Nothing touches the warehouse. The
scratch database is SQLite: SQL written for PostgreSQL only (e.g. `::` casts) fails here with a 409 naming
the database error.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from pydantic import Field

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node, build_graph
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.pipelines.spec import SourceSpec, TransformSpec
from aggregator.pipelines.transform_assets import transform_sql
from aggregator.proxy.api.access import require
from aggregator.proxy.api.data_routes import json_value
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Strict
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.schema_routes import Preview, read_preview
from aggregator.proxy.api.spec_scope import require_preview_grant
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role
from connectors.batches import type_of

SQLITE_TYPES = {"integer": "INTEGER", "float": "REAL", "boolean": "INTEGER", "text": "TEXT",
                "timestamp": "TEXT", "date": "TEXT"}


class TransformPreviewRequest(Strict):
    """Row limits of a transform preview."""

    source_rows: int = Field(100, ge=1, le=1000, description="Rows read from each upstream source.")
    limit: int = Field(20, ge=1, le=1000, description="Rows of the transform's result returned at most.")


def _upstream_order(node: Node) -> list[Node]:
    order: list[Node] = []
    seen: set[int] = set()

    def visit(n: Node) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        for up in n.upstream.values():
            visit(up)
        order.append(n)

    visit(node)
    return order


def preview_transform(root: Path, pipeline: str, transform: str, source_rows: int, limit: int) -> Preview:
    try:
        specs = load_specs(root)
        graph = build_graph(specs)
    except SpecErrors as exc:
        raise ApiError(503, f"the pipeline specs do not load ({len(exc.errors)} problem(s))") from None
    node = graph.nodes.get((pipeline, transform))
    if node is None or not isinstance(node.spec, TransformSpec):
        raise ApiError(404, f"no transform {transform!r} in pipeline {pipeline!r}")
    with tempfile.TemporaryDirectory(prefix="aggregator-preview-") as scratch:
        path = Path(scratch) / "preview.db"
        destination = SqlDestination(url=f"sqlite:///{path}")
        conn = sqlite3.connect(path)
        try:
            for up in _upstream_order(node)[:-1]:
                table = destination.quote(up.table)
                if isinstance(up.spec, SourceSpec):
                    connection, _ = specs.connections[up.spec.connection]
                    rows = read_preview(connection, up.spec, up.spec.connection, source_rows)
                    cols = ", ".join(f"{destination.quote(c)} {SQLITE_TYPES.get(t, 'TEXT')}"
                                     for c, t in rows.columns.items())
                    conn.execute(f"CREATE TABLE {table} ({cols})")
                    marks = ", ".join("?" for _ in rows.columns)
                    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows.rows)  # noqa: S608 (a scratch table of quoted identifiers; values are ?)
                    conn.commit()
                else:
                    conn.execute(f"CREATE TABLE {table} AS {transform_sql(up, destination)}")
                    conn.commit()
            cursor = conn.execute(transform_sql(node, destination))
            columns = [d[0] for d in cursor.description]
            fetched = cursor.fetchmany(limit + 1)
        except sqlite3.Error as exc:
            raise ApiError(409, f"the transform does not run over the previewed rows: {exc}") from None
        finally:
            conn.close()
            destination.engine.dispose()
    kept = fetched[:limit]
    types = {}
    for index, column in enumerate(columns):
        found = next((type_of(r[index]) for r in kept if r[index] is not None), None)
        types[column] = found.value if found is not None else "text"
    return Preview(columns=types, rows=[[json_value(v) for v in r] for r in fetched[:limit]],
                   truncated=len(fetched) > limit)


def routes(api: ApiState) -> list[Route]:
    async def preview_transform_rows(req: ApiRequest) -> Preview:
        """Run a transform over previewed rows of its upstream sources (nothing is written anywhere)."""
        pipeline, transform = req.params["name"], req.params["transform"]
        body = req.body_as(TransformPreviewRequest)
        require(req.principal, Role.viewer, "preview_transform", [pipeline])
        await api.services.run_io(require_preview_grant, req.principal, api.platform.pipelines_dir, pipeline, transform)
        try:
            result: Preview = await api.services.run_io(preview_transform, api.platform.pipelines_dir, pipeline,
                                                        transform, body.source_rows, body.limit)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - connector errors name what failed, never a secret
            raise ApiError(409, f"previewing {pipeline}/{transform} failed: {str(exc).splitlines()[0][:500]}") \
                from None
        return result

    return [Route("POST", "/api/pipelines/{name}/transforms/{transform}/preview", preview_transform_rows,
                  "Preview a transform over sample rows", body=TransformPreviewRequest, response=Preview,
                  statuses=(409, 415, 503), reads=True)]

