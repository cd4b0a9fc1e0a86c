"""YAML with line numbers: every mapping key and list item is located, and duplicate keys are errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

Loc = tuple[str | int, ...]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _positions(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            out[child] = key_node.start_mark.line + 1
            _positions(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*path, index), out)


def load_with_lines(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse `text`; return the data and the 1-based line of every key and item. Raises yaml.MarkedYAMLError."""
    node = yaml.compose(text, Loader=_StrictLoader)
    if node is None:
        return None, {}
    lines: dict[Loc, int] = {}
    _positions(node, (), lines)
    return yaml.load(text, Loader=_StrictLoader), lines  # noqa: S506 (_StrictLoader is a SafeLoader)


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
