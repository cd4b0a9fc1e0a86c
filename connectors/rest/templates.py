"""Placeholders in request paths, params, headers and bodies: {cursor}, {window_start}, {window_end},
{parent.<field>}. Values are substituted, never evaluated; a placeholder whose value is missing drops the
parameter (so the first incremental load simply omits `since=`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from connectors.errors import ConnectorConfigError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
NAMES = ("cursor", "window_start", "window_end")
_DROP = object()


def _names_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in _names_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in _names_in(v)]
    return []


def check_templates(values: dict[str, Any], *, allow_parent: bool) -> None:
    """Raise ConnectorConfigError for a placeholder that is not one of the known names."""
    for where, value in values.items():
        for name in _names_in(value):
            if name in NAMES or (allow_parent and name.startswith("parent.")):
                continue
            allowed = ", ".join(f"{{{n}}}" for n in NAMES) + (", {parent.<field>}" if allow_parent else "")
            raise ConnectorConfigError(f"{where}: unknown placeholder {{{name}}}; allowed: {allowed}")


def _lookup(name: str, context: dict[str, Any]) -> Any:
    head, _, rest = name.partition(".")
    value = context.get(head)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value


def render(value: Any, context: dict[str, Any]) -> Any:
    """`value` with placeholders filled; a string that is exactly one placeholder keeps the value's type."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole:
            found = _lookup(whole.group(1), context)
            return _DROP if found is None else found
        missing = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal missing
            found = _lookup(match.group(1), context)
            missing = missing or found is None
            return "" if found is None else str(found)

        rendered = PLACEHOLDER.sub(substitute, value)
        return _DROP if missing else rendered
    if isinstance(value, dict):
        return {k: r for k, v in value.items() if (r := render(v, context)) is not _DROP}
    if isinstance(value, list):
        return [r for v in value if (r := render(v, context)) is not _DROP]
    return value


def render_path(path: str, context: dict[str, Any]) -> str:
    """`path` with placeholders filled and percent-encoded, so a parent value cannot add path segments."""

    def substitute(match: re.Match[str]) -> str:
        found = _lookup(match.group(1), context)
        if found is None:
            raise ConnectorConfigError(f"path {path!r}: {{{match.group(1)}}} has no value in {context.get('parent')!r}")
        return quote(str(found), safe="")

    return PLACEHOLDER.sub(substitute, path)
