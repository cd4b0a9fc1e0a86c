"""The one YAML loader for spec documents: a budget on size, nesting, aliases and expanded nodes.

A 550-byte "billion laughs" document (13 levels of 9 aliases) once drove the proxy to 20 GB: PyYAML shares
an aliased node, but everything that walks the result (line positions, pydantic, template expansion, JSON
encoding) visits each alias path separately. A 50,000-deep flow sequence hit Python's recursion limit
inside the composer and answered a bare 500. So every spec document is composed here, once, under a budget
checked while composing: the document's bytes, its nesting depth, the number of aliases, and the number of
nodes the document would have with every alias expanded (each node's expanded size is computed once, from
its children's, so the check costs time proportional to the text, never to the expansion). A document past
any limit is refused with `YamlBudgetError`, which names the limit, its value, the variable that sets it
and the line where it was crossed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

ENV = {
    "max_bytes": "AGGREGATOR_SPEC_MAX_BYTES",
    "max_depth": "AGGREGATOR_SPEC_MAX_DEPTH",
    "max_aliases": "AGGREGATOR_SPEC_MAX_ALIASES",
    "max_nodes": "AGGREGATOR_SPEC_MAX_NODES",
}


class YamlLimits(BaseModel):
    """What one spec document may hold. Generous for a hand-written spec, far below what hurts."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(1 << 20, gt=0, description="AGGREGATOR_SPEC_MAX_BYTES: size of one spec document.")
    max_depth: int = Field(
        64, gt=0, le=200, description="AGGREGATOR_SPEC_MAX_DEPTH: nesting of mappings and lists (at most 200, "
        "so composing stays far from Python's recursion limit).")
    max_aliases: int = Field(500, ge=0, description="AGGREGATOR_SPEC_MAX_ALIASES: `*alias` uses in one document.")
    max_nodes: int = Field(
        250_000, gt=0, description="AGGREGATOR_SPEC_MAX_NODES: scalars, mappings and lists in the document "
        "with every alias expanded (what anything walking the loaded data visits).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> YamlLimits:
        env = os.environ if environ is None else environ
        return cls.model_validate({field: env[var] for field, var in ENV.items() if env.get(var)})


class YamlBudgetError(yaml.MarkedYAMLError):
    """A document past one of the limits. A YAML error (so every caller that handles invalid YAML handles it)
    with a position, and a ValueError for callers that validate input."""

    def __init__(self, limit: str, message: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(problem=f"{message} (limit {limit}, set by {ENV[limit]})", problem_mark=mark)
        self.limit = limit

    @property
    def message(self) -> str:
        """What `aggregator validate` and the API show: the problem, the limit and the variable setting it."""
        return str(self.problem)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps the budget while composing."""

    def __init__(self, stream: str, limits: YamlLimits) -> None:
        super().__init__(stream)
        self.limits = limits
        self.depth = 0
        self.aliases = 0
        self.expanded = 0  # nodes composed so far, aliases counted at their full expanded size
        self.sizes: dict[int, int] = {}  # id(node) -> expanded size, filled when the node is complete
        # Where each alias was written, by (id(parent node), item index or id(key node)): the node tree holds
        # only the anchored node, whose position is the anchor's.
        self.alias_lines: dict[tuple[int, int], int] = {}

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner reads ahead while a `[` or `{` could still start a key: refusing deep flow nesting
        # only in the composer let 50,000 `[` cost seconds of scanning first.
        if self.flow_level >= self.limits.max_depth:
            raise YamlBudgetError("max_depth", f"nested deeper than {self.limits.max_depth} levels",
                                  self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                raise YamlBudgetError("max_aliases", f"more than {self.limits.max_aliases} aliases",
                                      event.start_mark)
            node: yaml.Node = super().compose_node(parent, index)
            size = self.sizes.get(id(node))
            if size is None:
                # The anchor is still being composed: the alias sits inside the node it names.
                raise YamlBudgetError("max_nodes", f"alias *{event.anchor} refers to a node that contains it "
                                      "(an infinite document)", event.start_mark)
            self._grow(size, event.start_mark)
            if parent is not None and index is not None:
                key = index if isinstance(index, int) else id(index)
                self.alias_lines[(id(parent), key)] = event.start_mark.line + 1
            return node
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise YamlBudgetError("max_depth", f"nested deeper than {self.limits.max_depth} levels",
                                  event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self.sizes[id(child)] for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        else:
            size = 1
        self.sizes[id(node)] = size
        # Children were counted when they were composed; only this node itself is new.
        self._grow(1, event.start_mark)
        return node

    def _grow(self, count: int, mark: yaml.Mark) -> None:
        self.expanded += count
        if self.expanded > self.limits.max_nodes:
            raise YamlBudgetError("max_nodes", f"more than {self.limits.max_nodes} nodes with its aliases "
                                  "expanded", mark)


def _construct_mapping(loader: _BoundedLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """PyYAML silently keeps the last of two equal keys; a spec with both is an error."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_BoundedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_size(text: str, limits: YamlLimits) -> None:
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limits.max_bytes else len(text)
    if size > limits.max_bytes:
        raise YamlBudgetError("max_bytes", f"the document is {size} bytes, more than {limits.max_bytes}")


@dataclass(frozen=True)
class Composed:
    """A document composed under the budget: its node tree, its data, and the line of every alias use."""

    node: yaml.Node | None
    data: Any
    alias_lines: dict[tuple[int, int], int] = field(repr=False)

    def alias_line(self, parent: yaml.Node, index: int | yaml.Node) -> int | None:
        """The line where item `index` (or the value of key node `index`) of `parent` was written as an alias."""
        return self.alias_lines.get((id(parent), index if isinstance(index, int) else id(index)))


def compose(text: str, limits: YamlLimits | None = None) -> Composed:
    """The document composed once under `limits` (default: from the environment). Raises YamlBudgetError
    past a limit, or the usual yaml.YAMLError for invalid YAML."""
    limits = limits or YamlLimits.from_env()
    check_size(text, limits)
    loader = _BoundedLoader(text, limits)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    return Composed(node, data, loader.alias_lines)


def safe_load(text: str, limits: YamlLimits | None = None) -> Any:
    """`yaml.safe_load` for spec documents: the same data, under the budget."""
    return compose(text, limits).data


def check(text: str, limits: YamlLimits | None = None) -> None:
    """Refuse (YamlBudgetError) a document past the budget without building its data: for request bodies,
    before anything else reads them."""
    limits = limits or YamlLimits.from_env()
    check_size(text, limits)
    loader = _BoundedLoader(text, limits)
    try:
        loader.get_single_node()
    finally:
        loader.dispose()
