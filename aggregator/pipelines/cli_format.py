"""How the CLI prints rows: one plain-text table format for every listing command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def text_table(rows: Sequence[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    """`rows` under `headers`, columns padded to their widest cell, a dashed rule under the headers."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)])
