"""YAML with line numbers: every mapping key and list item is located, and duplicate keys are errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from aggregator.pipelines.bounded_yaml import Composed, YamlLimits, compose

Loc = tuple[str | int, ...]


def _positions(doc: Composed) -> dict[Loc, int]:
    """The line of every key and item, each node walked once. A node reached again through an alias is
    located at the alias and not walked again: walking every alias path is what made a 550-byte "billion
    laughs" document cost 20 GB. Iterative, so nesting never meets the recursion limit."""
    if doc.node is None:
        return {}
    out: dict[Loc, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, Loc, int]] = [(doc.node, (), doc.node.start_mark.line + 1)]
    while stack:
        node, path, line = stack.pop()
        out.setdefault(path, line)
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, Loc, int]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*path, str(key_node.value))
                out[child] = key_node.start_mark.line + 1
                value_line = doc.alias_line(node, key_node) or value_node.start_mark.line + 1
                children.append((value_node, child, value_line))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*path, index), doc.alias_line(node, index) or item.start_mark.line + 1)
                        for index, item in enumerate(node.value)]
        # Reversed onto the stack: nodes are walked in document order, so an anchor is walked at its own
        # path and its aliases are only located.
        stack.extend(reversed(children))
    return out


def load_with_lines(text: str, limits: YamlLimits | None = None) -> tuple[Any, dict[Loc, int]]:
    """Parse `text` under the spec budget; return the data and the 1-based line of every key and item.
    Raises yaml.MarkedYAMLError (YamlBudgetError past a limit)."""
    doc = compose(text, limits)
    if doc.node is None:
        return None, {}
    return doc.data, _positions(doc)


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """Line of the deepest prefix of `loc` that was written in the file."""
    path: Loc = ()
    for part in loc:
        if (*path, part) in lines:
            path = (*path, part)
    return lines.get(path)


def dotted(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
