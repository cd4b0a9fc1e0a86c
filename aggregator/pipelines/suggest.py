""""Did you mean …?" for unknown spec keys, from the published JSON Schema of spec files.

The schema (json_schema.py) already knows every key allowed at every place of a spec file, connector configs
included, so a misspelt key is matched against the keys allowed beside it. Unions (a paginator's `type`, a
connection's connector) are not resolved: every branch's keys are candidates, which is what a reader of the
error wants to see anyway.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any

Loc = tuple[str | int, ...]

# Past this many allowed keys the message names the closest ones only.
_LIST_ALL_UP_TO = 12


@cache
def _schema() -> dict[str, Any]:
    from aggregator.pipelines.json_schema import spec_json_schema

    return spec_json_schema()


def _resolve(node: Any, defs: dict[str, Any]) -> list[dict[str, Any]]:
    """`node` and every schema it stands for ($ref, anyOf/oneOf/allOf branches, if/then), flattened."""
    out: list[dict[str, Any]] = []
    stack, seen = [node], 0
    while stack and seen < 200:  # the spec schema is finite; the cap only guards against a ref cycle
        seen += 1
        cur = stack.pop()
        if not isinstance(cur, dict):
            continue
        ref = cur.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            stack.append(defs.get(ref.removeprefix("#/$defs/")))
        for key in ("anyOf", "oneOf", "allOf"):
            stack.extend(cur.get(key) or [])
        if "then" in cur:
            stack.append(cur["then"])
        out.append(cur)
    return out


def _children(nodes: list[dict[str, Any]], part: str | int, defs: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[Any] = []
    for node in nodes:
        if isinstance(part, int):
            found.append(node.get("items"))
            continue
        props = node.get("properties") or {}
        if part in props:
            found.append(props[part])
        elif isinstance(node.get("additionalProperties"), dict):
            found.append(node["additionalProperties"])
    return [n for f in found if f is not None for n in _resolve(f, defs)]


def allowed_keys(parent: Loc) -> set[str]:
    """Keys the schema allows in the mapping at `parent` (a location as the user wrote it)."""
    schema = _schema()
    defs = schema.get("$defs", {})
    nodes = _resolve(schema, defs)
    for part in parent:
        nodes = _children(nodes, part, defs)
        if not nodes:
            return set()
    return {key for node in nodes for key in (node.get("properties") or {})}


def _docs(loc: Loc) -> str:
    """The page that lists the keys: connector options live in docs/connectors/, the rest in docs/pipelines.md."""
    return "docs/connectors/" if "stream" in loc or loc[:1] == ("connections",) else "docs/pipelines.md"


def unknown_key_hint(loc: Loc) -> str:
    """The sentence after "unknown key" for the key at the end of `loc`."""
    if not loc or not isinstance(loc[-1], str):
        return f"check the spelling; {_docs(loc)} lists the allowed keys"
    allowed = sorted(allowed_keys(loc[:-1]))
    if not allowed:
        return f"check the spelling; {_docs(loc)} lists the allowed keys"
    close = difflib.get_close_matches(loc[-1], allowed, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    if len(allowed) <= _LIST_ALL_UP_TO:
        return f"{hint}allowed here: {', '.join(allowed)}"
    return f"{hint}see {_docs(loc)} for the allowed keys"
