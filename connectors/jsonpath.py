"""A small JSON path: `$.data.items`, `data.items`, `results[0].rows`, `links.next` — enough to select
records and pagination values in API responses without a dependency."""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import ConnectorConfigError

_TOKEN = re.compile(r"\.?([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")
_MISSING = object()


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a path into keys and list indices; raises ConnectorConfigError saying what is allowed."""
    text = path.strip()
    if text in ("", "$"):
        return ()
    text = text.removeprefix("$")
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConnectorConfigError(
                f"invalid JSON path {path!r} at {text[pos:]!r}: use dotted keys and [index], "
                "e.g. '$.data.items' or 'results[0].rows'"
            )
        key, index, quoted = match.groups()
        parts.append(int(index) if index is not None else (key if key is not None else quoted))
        pos = match.end()
    return tuple(parts)


def find(document: Any, path: tuple[str | int, ...], default: Any = None) -> Any:
    """The value at `path` in `document`, or `default` when any step is missing."""
    value = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return default
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
    return value
