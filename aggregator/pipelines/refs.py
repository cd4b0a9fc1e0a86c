"""`{{ ref('name') }}` references in transform SQL: parsing and rendering."""

from __future__ import annotations

import re
from collections.abc import Callable

REF_RE = re.compile(r"\{\{\s*ref\(\s*['\"](?P<name>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)['\"]\s*\)\s*\}\}")


def refs_in(sql: str) -> list[str]:
    """Names referenced in `sql`, in order of first appearance: `name` or `pipeline.name`."""
    seen: dict[str, None] = {}
    for match in REF_RE.finditer(sql):
        seen.setdefault(match.group("name"), None)
    return list(seen)


def render(sql: str, table_for: Callable[[str], str]) -> str:
    """Replace each reference with the quoted table name `table_for(name)` returns."""
    return REF_RE.sub(lambda m: table_for(m.group("name")), sql)
