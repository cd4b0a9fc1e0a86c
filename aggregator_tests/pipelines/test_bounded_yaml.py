"""The spec loader's budget: hostile documents are refused fast, naming the limit; real specs load as before.

Regression for the 550-byte "billion laughs" spec that drove the proxy to 20 GB (`_positions` walked every
alias path) and for 50,000-deep flow nesting that answered a bare 500 (RecursionError in the composer).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from aggregator.pipelines import bounded_yaml
from aggregator.pipelines.bounded_yaml import YamlBudgetError, YamlLimits
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.pipelines.yaml_lines import line_of, load_with_lines
from aggregator.settings import EXAMPLE_PIPELINES_DIR, PACKAGE_DIR
from aggregator_tests.hostile_documents import Hostile, billion_laughs, yaml_family

FAMILY = yaml_family()
REPO = PACKAGE_DIR.parent


@pytest.mark.parametrize("doc", FAMILY, ids=[d.name for d in FAMILY])
def test_hostile_document_is_refused_fast_naming_the_limit(doc: Hostile) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(YamlBudgetError) as refused:
            load_with_lines(doc.text)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.limit == doc.limit, refused.value.message
    assert bounded_yaml.ENV[doc.limit] in refused.value.message
    # Milliseconds on an idle machine; the bound leaves room for a loaded one, far below the minutes and
    # gigabytes of the unbounded loader.
    assert elapsed < 2.0, f"{doc.name} took {elapsed:.2f}s to refuse"
    assert peak < 40 * len(doc.text) + (8 << 20), f"{doc.name} peaked at {peak >> 20} MiB"


def test_spec_file_past_the_budget_is_a_located_spec_error(tmp_path: Path) -> None:
    (tmp_path / "laughs.yaml").write_text("# a comment\n" + billion_laughs(13, 9, under="pipelines"))
    with pytest.raises(SpecErrors) as raised:
        load_specs(tmp_path)
    [error] = raised.value.errors
    assert error.file == tmp_path / "laughs.yaml" and error.line is not None and error.line > 1
    assert "max_nodes" in error.message and "AGGREGATOR_SPEC_MAX_NODES" in error.message


@pytest.mark.parametrize(("levels", "width"), [(2, 3), (3, 4), (4, 5), (5, 6), (6, 3), (8, 2)])
def test_expanded_size_is_counted_exactly(levels: int, width: int) -> None:
    """The budget counts what the expanded document holds: a limit one below refuses, at it loads."""
    text = billion_laughs(levels, width)
    data = yaml.safe_load(text)

    def size(value: object) -> int:
        if isinstance(value, dict):
            return 1 + sum(size(k) + size(v) for k, v in value.items())
        if isinstance(value, list):
            return 1 + sum(size(v) for v in value)
        return 1

    exact = size(data)
    assert load_with_lines(text, YamlLimits(max_nodes=exact))[0] == data
    with pytest.raises(YamlBudgetError, match="max_nodes"):
        load_with_lines(text, YamlLimits(max_nodes=exact - 1))


def test_limits_come_from_the_environment() -> None:
    limits = YamlLimits.from_env({"AGGREGATOR_SPEC_MAX_DEPTH": "3", "AGGREGATOR_SPEC_MAX_ALIASES": "1"})
    assert (limits.max_depth, limits.max_aliases) == (3, 1)
    with pytest.raises(YamlBudgetError, match="deeper than 3"):
        load_with_lines("a: {b: {c: {d: 1}}}", limits)
    with pytest.raises(YamlBudgetError, match="more than 1 aliases"):
        load_with_lines("a: &x 1\nb: [*x, *x]\n", limits)


def _spec_documents() -> list[Path]:
    found = sorted({*EXAMPLE_PIPELINES_DIR.rglob("*.yaml"), *(REPO / "docs").rglob("*.yaml"),
                    *(REPO / "aggregator_tests").rglob("*.yaml")})
    return [p for p in found if p.stat().st_size < (1 << 20)]


@pytest.mark.parametrize("path", _spec_documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_real_document_loads_as_pyyaml_loads_it(path: Path) -> None:
    """Differential: within the budget the loader is PyYAML's SafeLoader (plus duplicate-key errors)."""
    text = path.read_text(encoding="utf-8")
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            load_with_lines(text)
        return
    try:
        data, _ = load_with_lines(text)
    except yaml.constructor.ConstructorError as exc:
        assert "duplicate key" in str(exc)
        return
    assert data == expected


def test_an_alias_is_located_where_it_is_used() -> None:
    """Positions walk each node once: a path through an alias is located at the alias, its anchor at the
    anchor, and nothing under the alias is walked again."""
    text = "base: &b\n  x: 1\n  y: [1, 2]\nuses:\n  - *b\n  - *b\n"
    data, lines = load_with_lines(text)
    assert data["uses"] == [data["base"], data["base"]]
    assert lines[("base", "y", 1)] == 3
    assert line_of(lines, ("uses", 1, "y", 0)) == 6
    assert not any(loc[:1] == ("uses",) and len(loc) > 2 for loc in lines)
