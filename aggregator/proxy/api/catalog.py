"""What the specs declare, for the data endpoints: warehouse tables per pipeline, connections and users."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aggregator.pipelines.connections import Connection
from aggregator.pipelines.graph import build_graph
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.errors import ApiError

WAREHOUSE = "warehouse"


@dataclass(frozen=True)
class AssetTable:
    pipeline: str
    asset: str
    table: str
    destination: str


@dataclass(frozen=True)
class Catalog:
    tables: list[AssetTable]
    connections: dict[str, tuple[Connection, str]]  # name -> (connection, file relative to the specs dir)
    used_by: dict[str, list[str]]  # connection -> pipelines reading from or landing in it


def read_catalog(root: Path) -> Catalog:
    """Parse the specs (the same loader as the code location); 503 when they do not load."""
    try:
        specs = load_specs(root)
        graph = build_graph(specs)
    except SpecErrors as exc:
        first = exc.errors[0] if exc.errors else None
        raise ApiError(503, f"the pipeline specs do not load ({len(exc.errors)} problem(s), first: {first}); "
                       "fix them with `aggregator validate`") from None
    tables = [AssetTable(node.pipeline.name, node.name, node.table, node.pipeline.destination)
              for node in graph.nodes.values()]
    used: dict[str, set[str]] = {}
    for pipeline, _, _ in specs.pipelines:
        used.setdefault(pipeline.destination, set()).add(pipeline.name)
        for source in pipeline.sources:
            used.setdefault(source.connection, set()).add(pipeline.name)
    connections = {name: (conn, str(sf.path.relative_to(root)) if sf.path.is_relative_to(root) else str(sf.path))
                   for name, (conn, sf) in specs.connections.items()}
    return Catalog(tables, connections, {k: sorted(v) for k, v in used.items()})
