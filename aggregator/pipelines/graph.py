"""The resolved pipeline graph: every source and transform, its table, resources and upstreams, checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from aggregator.pipelines.connections import STREAM_TYPE_OF
from aggregator.pipelines.load import SourceFile, SpecError, SpecErrors, Specs
from aggregator.pipelines.spec import PipelineSpec, SourceSpec, TransformSpec, pipeline_pool
from aggregator.pipelines.yaml_lines import Loc

WAREHOUSE = "warehouse"


@dataclass
class Node:
    """A source or transform: the asset it becomes and the table it lands in."""

    pipeline: PipelineSpec
    spec: SourceSpec | TransformSpec
    file: SourceFile
    loc: Loc  # where it is declared, for errors
    upstream: dict[str, Node] = field(default_factory=dict)  # ref name as written → node

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def table(self) -> str:
        return self.spec.table or f"{self.pipeline.name}_{self.spec.name}"

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.pipeline.name, self.spec.name])

    @property
    def is_source(self) -> bool:
        return isinstance(self.spec, SourceSpec)

    # Typed views of `spec` for code that handles one kind of node. They raise rather than assert: an
    # `assert` would vanish under `python -O` and let the wrong spec run on.
    @property
    def source(self) -> SourceSpec:
        if not isinstance(self.spec, SourceSpec):
            raise TypeError(f"{self.file.path}: {self.pipeline.name}/{self.name} is a transform, not a source")
        return self.spec

    @property
    def transform(self) -> TransformSpec:
        if not isinstance(self.spec, TransformSpec):
            raise TypeError(f"{self.file.path}: {self.pipeline.name}/{self.name} is a source, not a transform")
        return self.spec


def destination_key(connection: str) -> str:
    """Resource key of a destination: `warehouse`, or `<connection>_destination` so the same connection
    can also be a source under its own name."""
    return WAREHOUSE if connection == WAREHOUSE else f"{connection}_destination"


@dataclass
class Graph:
    nodes: dict[tuple[str, str], Node]
    specs: Specs

    def pipeline_nodes(self, pipeline: str) -> list[Node]:
        return [n for (p, _), n in self.nodes.items() if p == pipeline]


def build_graph(specs: Specs) -> Graph:
    """Resolve refs and connections; raise SpecErrors naming every dangling reference and cycle."""
    errors: list[SpecError] = []
    nodes: dict[tuple[str, str], Node] = {}
    for pipeline, sf, index in specs.pipelines:
        items: list[tuple[str, int, SourceSpec | TransformSpec]] = [
            *(("sources", i, s) for i, s in enumerate(pipeline.sources)),
            *(("transforms", i, t) for i, t in enumerate(pipeline.transforms)),
        ]
        for kind, i, item in items:
            nodes[(pipeline.name, item.name)] = Node(pipeline, item, sf, ("pipelines", index, kind, i))
    for pipeline, sf, index in specs.pipelines:
        errors.extend(_owned(_check_connections(pipeline, sf, index, specs), pipeline.name))
    for node in nodes.values():
        if isinstance(node.spec, TransformSpec):
            field_name = "sql" if node.spec.sql is not None else "from"
            for ref in node.spec.refs:
                owner, _, name = ref.rpartition(".")
                target = nodes.get((owner or node.pipeline.name, name))
                if target is None:
                    # (The error belongs to this pipeline: loading drops it, not the one it names.)
                    known = sorted(n for (p, n) in nodes if p == (owner or node.pipeline.name))
                    errors.append(_owned([node.file.error(
                        (*node.loc, field_name),
                        f"reference {ref!r} names no source or transform; known in pipeline "
                        f"{owner or node.pipeline.name!r}: {', '.join(known) or 'none'}",
                    )], node.pipeline.name)[0])
                elif target is node:
                    errors.append(_owned([node.file.error((*node.loc, field_name), f"transform {ref!r} reads itself")],
                                         node.pipeline.name)[0])
                else:
                    node.upstream[ref] = target
    errors.extend(_cycles(nodes))
    if errors:
        raise SpecErrors(errors)
    return Graph(nodes=nodes, specs=specs)


def _owned(errors: list[SpecError], pipeline: str) -> list[SpecError]:
    """Mark errors as belonging to `pipeline`, so a partial load drops only that pipeline."""
    for error in errors:
        error.pipeline = pipeline
    return errors


def _check_connections(pipeline: PipelineSpec, sf: SourceFile, index: int, specs: Specs) -> list[SpecError]:
    errors: list[SpecError] = []
    declared = ", ".join(sorted(specs.connections)) or "none"
    if pipeline.destination != WAREHOUSE:
        conn = specs.connections.get(pipeline.destination)
        if conn is None or conn[0].type != "sql":
            what = "is not declared" if conn is None else f"is a {conn[0].type} connection"
            errors.append(sf.error(("pipelines", index, "destination"),
                                   f"destination {pipeline.destination!r} {what}; use {WAREHOUSE!r} or a sql connection "
                                   f"(declared: {declared})"))
    for i, source in enumerate(pipeline.sources):
        loc: Loc = ("pipelines", index, "sources", i)
        conn = specs.connections.get(source.connection)
        if conn is None:
            errors.append(sf.error((*loc, "connection"), f"unknown connection {source.connection!r}; declared: {declared}"))
        elif source.connection == WAREHOUSE:
            errors.append(sf.error((*loc, "connection"), "the warehouse is a destination; read its tables with a transform"))
        elif STREAM_TYPE_OF[conn[0].type] != source.stream.type:
            errors.append(sf.error((*loc, "stream", "type"),
                                   f"connection {source.connection!r} is {conn[0].type}, so the stream type must be "
                                   f"{STREAM_TYPE_OF[conn[0].type]!r}, not {source.stream.type!r}"))
    return errors


def _cycles(nodes: dict[tuple[str, str], Node]) -> list[SpecError]:
    errors: list[SpecError] = []
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: Node, path: list[Node]) -> None:
        state[id(node)] = 1
        for upstream in node.upstream.values():
            if state.get(id(upstream)) == 1:
                cycle = [*path[path.index(upstream):], upstream] if upstream in path else [node, upstream]
                names = " -> ".join(n.key.to_user_string() for n in cycle)
                errors.append(_owned([node.file.error(node.loc, f"dependency cycle: {names}")], node.pipeline.name)[0])
            elif state.get(id(upstream)) is None:
                visit(upstream, [*path, upstream])
        state[id(node)] = 2

    for node in nodes.values():
        if state.get(id(node)) is None:
            visit(node, [node])
    return errors


def asset_kwargs(node: Node) -> dict[str, Any]:
    pipeline = node.pipeline
    return {
        "key": node.key,
        "group_name": pipeline.name,
        "description": node.spec.description or f"{node.name} ({pipeline.name} pipeline)",
        "owners": pipeline.owners or None,
        "tags": pipeline.tags or None,
        # Pools are enforced per run by the run queue (`concurrency.pools.granularity: run` in dagster.yaml),
        # however the run was started: UI, API, schedule, sensor or backfill.
        "pool": None if pipeline.overlapping_runs else pipeline_pool(pipeline.name),
    }
