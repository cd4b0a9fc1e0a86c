"""Scope decisions on spec writes and transform previews, taken on what the loader says a write changes.

A scoped editor may change only pipelines in the grant (template instances, and instances in other files of
a template it edits, count as the pipelines they make); a connection, wherever it is declared, is shared by
every pipeline that uses it, so adding, changing or removing one needs the same unscoped editor grant as
`/api/connections`; a transform that reads another pipeline's tables (`{{ ref('other.name') }}`) needs that
pipeline in the writer's grant, and in the grant of whoever previews it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aggregator.pipelines.declared import Impact
from aggregator.pipelines.graph import Node, build_graph
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.access import in_scope, require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.policy.rbac import Principal, Role


def write_guard(principal: Principal, action: str) -> Callable[[Impact], None]:
    """The check `SpecStore.write` runs on what the write changes; raises a 403 naming the permission."""

    def authorize(impact: Impact) -> None:
        require(principal, Role.editor, action, impact.pipelines)
        if impact.connections and principal.scope is not None:
            names = ", ".join(sorted(impact.connections))
            raise ApiError(403, f"{action} adds, changes or removes connection(s) {names}: a connection is shared "
                           "by every pipeline using it, so writing one needs an unscoped editor grant, wherever "
                           "it is declared (leave the connection as it is, or ask an editor of all pipelines)",
                           f"editor:update_connection {names} (all pipelines)")
        for pipeline, others in sorted(impact.reads.items()):
            outside = sorted(o for o in others if not in_scope(principal, o))
            if outside:
                raise ApiError(403, f"pipeline {pipeline!r} reads tables of {', '.join(outside)} "
                               f"(`ref('{outside[0]}.<name>')`), which is outside the grant "
                               f"({', '.join(sorted(principal.scope or ()))})",
                               f"editor:{action} reading {', '.join(outside)}")

    return authorize


def preview_reads(root: Path, pipeline: str, transform: str, texts: dict[Path, str] | None = None) -> list[str]:
    """Pipelines whose tables previewing `pipeline/transform` reads (its upstreams, transitively)."""
    try:
        graph = build_graph(load_specs(root, texts))
    except SpecErrors as exc:
        # Deny by default: without the graph nobody can tell what the preview would read.
        raise ApiError(503, f"the pipeline specs do not load ({len(exc.errors)} problem(s)); fix them with "
                       "`aggregator validate`") from None
    node = graph.nodes.get((pipeline, transform))
    if node is None:
        return [pipeline]  # the preview answers 404
    found: set[str] = set()
    stack: list[Node] = [node]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.add(current.pipeline.name)
        stack.extend(current.upstream.values())
    return sorted(found)


def require_preview_grant(principal: Principal, root: Path, pipeline: str, transform: str,
                          texts: dict[Path, str] | None = None) -> None:
    """403 unless every pipeline the preview reads rows of is in the previewer's grant (a cross-pipeline ref
    would otherwise show a `sales` reader the rows of `shop`'s sources)."""
    reads = preview_reads(root, pipeline, transform, texts)
    outside = sorted(p for p in reads if not in_scope(principal, p))
    if outside:
        raise ApiError(403, f"previewing {pipeline}/{transform} reads rows of {', '.join(outside)} (a ref to another "
                       f"pipeline), which is outside the grant ({', '.join(sorted(principal.scope or ()))})",
                       f"viewer:preview_transform on {', '.join(outside)}")
