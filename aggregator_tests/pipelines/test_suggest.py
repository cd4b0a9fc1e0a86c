"""Unknown spec keys are answered with the closest allowed keys, wherever they appear in a spec file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator.pipelines.load import SpecErrors, read_raw, validate_file
from aggregator.pipelines.suggest import allowed_keys
from aggregator.settings import EXAMPLE_PIPELINES_DIR

Loc = tuple[str | int, ...]


def _mapping_keys(node: Any, loc: Loc = ()) -> Iterator[Loc]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*loc, key)
            yield from _mapping_keys(value, (*loc, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _mapping_keys(item, (*loc, index))


def _typo(key: str) -> str:
    """Two adjacent letters swapped in the middle: the commonest typing slip."""
    i = max(1, len(key) // 2 - 1)
    return key[:i] + key[i + 1] + key[i] + key[i + 2:]


def _rename(node: Any, loc: Loc, new: str) -> Any:
    if len(loc) == 1:
        return {(new if k == loc[0] else k): v for k, v in node.items()}
    head, *rest = loc
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _rename(node[head], tuple(rest), new)  # type: ignore[index]
    return copy


def _cases() -> Iterator[tuple[Path, Loc]]:
    for path in sorted(EXAMPLE_PIPELINES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for loc in _mapping_keys(data):
            key = loc[-1]
            # Keys the user names (pipelines, connections, columns) are free-form, not schema keys.
            if isinstance(key, str) and len(key) >= 4 and key in allowed_keys(loc[:-1]):
                yield path, loc


CASES = list(_cases())


def test_the_samples_cover_many_keys() -> None:
    # The generated test below is only as good as the keys it mutates.
    assert len({loc[-1] for _, loc in CASES}) >= 15, CASES


@pytest.mark.parametrize(("path", "loc"), CASES, ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else v.stem)
def test_every_misspelt_sample_key_suggests_the_right_one(path: Path, loc: Loc, tmp_path: Path) -> None:
    key = str(loc[-1])
    typo = _typo(key)
    if typo == key or typo in allowed_keys(loc[:-1]):
        pytest.skip(f"{key!r} has no typo distinct from another allowed key")
    spec = tmp_path / path.name
    spec.write_text(yaml.safe_dump(_rename(yaml.safe_load(path.read_text()), loc, typo), sort_keys=False))
    with pytest.raises(SpecErrors) as info:
        validate_file(read_raw(spec), {})
    # A misspelt discriminator (`type`) is reported on its mapping, the other keys on themselves.
    messages = [e.message for e in info.value.errors
                if e.field.endswith(typo) or f"'{typo}'" in e.message or f"'{key}'" in e.message]
    assert messages, [str(e) for e in info.value.errors]
    assert f"'{key}'" in messages[0] and ("did you mean" in messages[0] or "misspelling" in messages[0]), messages
