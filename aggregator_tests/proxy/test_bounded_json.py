"""The request-body JSON parser: hostile bodies refused before parsing, naming the limit; others parse as
`json.loads` parses them (differential over generated bodies)."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from typing import Any

import pytest

from aggregator.proxy.policy.bounded_json import ENV, JsonBudgetError, JsonLimits, loads
from aggregator_tests.hostile_documents import Hostile, json_family

FAMILY = json_family()


@pytest.mark.parametrize("doc", FAMILY, ids=[d.name for d in FAMILY])
def test_hostile_body_is_refused_before_parsing(doc: Hostile) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(JsonBudgetError) as refused:
            loads(doc.text.encode())
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.limit == doc.limit and ENV[doc.limit] in str(refused.value)
    assert refused.value.status == (413 if doc.limit == "max_bytes" else 400)
    assert elapsed < 2.0, f"{doc.name}: {elapsed:.2f}s"
    # The measuring passes copy the body a few times and re.sub holds its pieces (about 35 bytes per string
    # in the body); no parse tree is built. Bodies are parsed on the event loop, so one at a time.
    assert peak < 40 * len(doc.text) + (1 << 20), f"{doc.name}: peak {peak >> 20} MiB"


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(7 if depth < 6 else 4)
    if kind == 0:
        return rng.randrange(-10**6, 10**6)
    if kind == 1:
        # Strings full of the characters the measuring pass must not count: brackets, commas, escapes.
        return "".join(rng.choice('[]{},:"\\ab\n\u00e9') for _ in range(rng.randrange(12)))
    if kind == 2:
        return rng.choice([None, True, False, 1.5])
    if kind == 3:
        return ""
    if kind in (4, 5):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {f"k{i}[,": _random_value(rng, depth + 1) for i in range(rng.randrange(5))}


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    return 1


@pytest.mark.parametrize("seed", range(40))
def test_generated_bodies_parse_as_json_loads_and_limits_are_exact(seed: int) -> None:
    """Within the budget the result is `json.loads`'s; the depth limit is exact (one below refuses), the
    values count never undercounts (strings full of brackets and commas included)."""
    rng = random.Random(seed)
    value = _random_value(rng, 0)
    raw = json.dumps(value, indent=rng.choice([None, 1])).encode()
    assert loads(raw) == json.loads(raw)
    depth = _depth(value)
    assert loads(raw, JsonLimits(max_depth=max(depth, 1))) == value
    if depth > 1:
        with pytest.raises(JsonBudgetError, match="max_depth"):
            loads(raw, JsonLimits(max_depth=depth - 1, max_values=10**6))
    values = _values(value)
    assert loads(raw, JsonLimits(max_values=values)) == value
    if values > 1:
        with pytest.raises(JsonBudgetError, match="max_values"):
            loads(raw, JsonLimits(max_values=values - 1))


def test_invalid_json_is_a_value_error_not_a_budget_error() -> None:
    for raw in (b"{", b'{"a": }', b'"unterminated', b"\xff\xfe"):
        with pytest.raises(ValueError) as raised:
            loads(raw)
        assert not isinstance(raised.value, JsonBudgetError)


def test_limits_come_from_the_environment() -> None:
    limits = JsonLimits.from_env({"AGGREGATOR_JSON_MAX_DEPTH": "2", "AGGREGATOR_JSON_MAX_BYTES": "100"})
    assert (limits.max_depth, limits.max_bytes) == (2, 100)
    with pytest.raises(JsonBudgetError, match="more than 2 levels"):
        loads(b"[[[]]]", limits)
    with pytest.raises(JsonBudgetError, match="101 bytes"):
        loads(b" " * 99 + b"[]", limits)
