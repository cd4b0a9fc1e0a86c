"""Which transforms read tables their refs do not name: errors located to the transform's field."""

from __future__ import annotations

from aggregator.pipelines.graph import Graph, Node
from aggregator.pipelines.load import SpecError
from aggregator.pipelines.spec import TransformSpec
from aggregator.pipelines.sql_tables import Refused, dialect_of, refused_in_expression, refused_reads
from aggregator.pipelines.steps import AggregateStep, DeriveStep, FilterStep
from aggregator.settings import Settings

RULE = ("a transform reads only the tables its refs name (`{{ ref('name') }}`, or `{{ ref('pipeline.name') }}` "
        "for another pipeline's)")


def read_problems(graph: Graph, settings: Settings) -> list[SpecError]:
    """Every transform whose SQL or step expressions read something no ref names; each error belongs to the
    transform's pipeline, so loading drops only that pipeline."""
    errors: list[SpecError] = []
    for node in graph.nodes.values():
        if isinstance(node.spec, TransformSpec):
            errors.extend(_problems(node, _dialect(node, graph, settings)))
    return errors


def _dialect(node: Node, graph: Graph, settings: Settings) -> str | None:
    dest = node.pipeline.destination
    if dest == "warehouse":
        return dialect_of(settings.warehouse_url)
    conn = graph.specs.connections.get(dest)
    url = conn[0].config.get("url") if conn else None
    return dialect_of(url if isinstance(url, str) else None)


def _problems(node: Node, dialect: str | None) -> list[SpecError]:
    spec = node.transform
    found: list[tuple[tuple[str | int, ...], list[Refused]]] = []
    if spec.sql is not None:
        found.append((("sql",), refused_reads(spec.sql, dialect)))
    for index, step in enumerate(spec.steps):
        exprs: dict[str, str] = {}
        if isinstance(step, FilterStep):
            exprs = {"filter": step.filter}
        elif isinstance(step, DeriveStep):
            exprs = {f"derive.{k}": v for k, v in step.derive.items()}
        elif isinstance(step, AggregateStep):
            exprs = {f"aggregate.metrics.{k}": v for k, v in step.aggregate.metrics.items()}
        for where, text in exprs.items():
            found.append((("steps", index, *where.split(".")), refused_in_expression(text, dialect)))
    errors = []
    for loc, refused in found:
        if refused:
            what = "; ".join(f"{r.what} {r.why}" for r in refused)
            error = node.file.error((*node.loc, *loc), f"{what}: {RULE}")
            error.pipeline = node.pipeline.name
            errors.append(error)
    return errors
