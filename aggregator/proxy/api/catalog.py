"""What the specs declare, for the data endpoints: warehouse tables per pipeline, connections and users."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aggregator.pipelines.connections import Connection
from aggregator.pipelines.graph import build_graph
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.pipelines.namespace import namespace_owner, table_problems
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


def read_catalog(root: Path, texts: dict[Path, str] | None = None) -> Catalog:
    """Parse the specs (the same loader as the code location); 503 when they do not load."""
    try:
        specs = load_specs(root, texts)
        graph = build_graph(specs)
    except SpecErrors as exc:
        first = exc.errors[0] if exc.errors else None
        raise ApiError(503, f"the pipeline specs do not load ({len(exc.errors)} problem(s), first: {first}); "
                       "fix them with `aggregator validate`") from None
    # A table is a pipeline's only inside its namespace (`<pipeline>_...`): a hand-written spec declaring
    # `table: shop_orders` or `sqlite_master` in `sales` gives the sales grant nothing (the code location
    # drops that pipeline and reports it); the declared name alone never decides.
    refused = {e.pipeline for e in table_problems(graph)}
    names = {p.name for p, _, _ in specs.pipelines}
    tables = [AssetTable(node.pipeline.name, node.name, node.table, node.pipeline.destination)
              for node in graph.nodes.values()
              if node.pipeline.name not in refused and namespace_owner(node.table, names) == node.pipeline.name]
    used: dict[str, set[str]] = {}
    for pipeline, _, _ in specs.pipelines:
        used.setdefault(pipeline.destination, set()).add(pipeline.name)
        for source in pipeline.sources:
            used.setdefault(source.connection, set()).add(pipeline.name)
    connections = {name: (conn, str(sf.path.relative_to(root)) if sf.path.is_relative_to(root) else str(sf.path))
                   for name, (conn, sf) in specs.connections.items()}
    return Catalog(tables, connections, {k: sorted(v) for k, v in used.items()})
