"""Python-defined assets beside the compiled ones: kept only when what they read is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from aggregator.pipelines.graph import Graph


def assets_with_deps_in(assets: Sequence[Any], graph: Graph) -> list[dg.AssetsDefinition]:
    """The assets whose upstream spec assets are all in `graph`; the others would fail on a missing table."""
    loaded = {node.key for node in graph.nodes.values()}
    kept: list[dg.AssetsDefinition] = []
    for asset in assets:
        if not isinstance(asset, dg.AssetsDefinition):
            continue
        upstream = {dep.asset_key for spec in asset.specs for dep in spec.deps} - set(asset.keys)
        if upstream <= loaded:
            kept.append(asset)
    return kept
