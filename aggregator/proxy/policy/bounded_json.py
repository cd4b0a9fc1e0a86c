"""The one JSON parser for request bodies: a budget on bytes, nesting depth and values, checked before parsing.

`json.loads` recurses in C up to Python's recursion limit: a body of 100,000 `[` raised RecursionError, which
no handler caught (a bare 500), and a small body of many empty containers grows many times its size in
memory. So the body is measured first, in C-speed passes (strings blanked by one regular expression, then
byte counts), and parsed only when it is within the budget: depth and the number of values (object members
and array items) are then known to be bounded, and the parse cannot recurse deeply or build more than the
budget allows. A body past the budget is `JsonBudgetError` (a ValueError) naming the limit and its value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENV = {
    "max_bytes": "AGGREGATOR_JSON_MAX_BYTES",
    "max_depth": "AGGREGATOR_JSON_MAX_DEPTH",
    "max_values": "AGGREGATOR_JSON_MAX_VALUES",
}

# A JSON string (possessive: an unterminated one costs one pass, never backtracking).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Everything but the four brackets deleted, and objects counted as arrays: only the nesting matters.
_KEEP_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


class JsonLimits(BaseModel):
    """What one JSON request body may hold (the GraphQL and upload bodies keep their own byte caps)."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(2 << 20, gt=0, description="AGGREGATOR_JSON_MAX_BYTES: size of a JSON body.")
    max_depth: int = Field(64, gt=0, le=500, description="AGGREGATOR_JSON_MAX_DEPTH: nesting of objects and "
                           "arrays (at most 500: the parser recurses once per level).")
    max_values: int = Field(200_000, gt=0, description="AGGREGATOR_JSON_MAX_VALUES: values in the body "
                            "(every object member and array item).")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JsonLimits:
        env = os.environ if environ is None else environ
        return cls.model_validate({field: env[var] for field, var in ENV.items() if env.get(var)})


class JsonBudgetError(ValueError):
    """A body past one limit: 413 for its size, 400 for its shape."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        self.status = 413 if limit == "max_bytes" else 400
        super().__init__(f"{message} (limit {limit}, set by {ENV[limit]})")


def measure(raw: bytes, limits: JsonLimits) -> None:
    """Refuse `raw` if it is past the budget; invalid JSON within it is left to the parser."""
    if len(raw) > limits.max_bytes:
        raise JsonBudgetError("max_bytes", f"the JSON body is {len(raw)} bytes, more than {limits.max_bytes}")
    bare = _STRING.sub(b'""', raw).translate(None, b" \t\r\n")
    containers = bare.count(b"[") + bare.count(b"{")
    # The root, plus per non-empty container its first value and one per comma: exact for valid JSON.
    values = 1 + containers - bare.count(b"[]") - bare.count(b"{}") + bare.count(b",")
    if values > limits.max_values:
        raise JsonBudgetError("max_values", f"the JSON body holds {values} values, more than "
                              f"{limits.max_values}")
    if containers <= limits.max_depth:
        return
    # Each pass deletes every innermost (empty) container, so a container of height h goes in pass h: the
    # depth is the number of passes, each a C-speed scan of what is left. Stop as soon as it is too deep;
    # brackets that never pair (invalid JSON) stop the loop early and are left to the parser.
    # A run of more opens than the limit is too deep at once: most deep bodies end here, after one search.
    brackets = bare.translate(_ONE_KIND, _KEEP_BRACKETS)
    too_deep = b"[" * (limits.max_depth + 1)
    for _ in range(limits.max_depth):
        if too_deep in brackets:
            break
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return
        brackets = shorter
    if too_deep in brackets or b"[]" in brackets:
        raise JsonBudgetError("max_depth", f"the JSON body is nested more than {limits.max_depth} levels deep")


def loads(raw: bytes | str, limits: JsonLimits | None = None) -> Any:
    """`json.loads` under the budget (default: from the environment). Raises JsonBudgetError past a limit,
    ValueError (or UnicodeDecodeError) for a body that is not JSON."""
    limits = limits or JsonLimits.from_env()
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    measure(data, limits)
    return json.loads(data)
