"""Regression: a spec holding a control character crashed `aggregator validate` (found by the API's
schemathesis contract test, which sent a NUL byte in a pipeline's YAML)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.pipelines.load import SpecErrors, load_specs


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b"])
def test_control_character_in_spec_is_a_located_error(tmp_path: Path, char: str) -> None:
    (tmp_path / "bad.yaml").write_text(f"pipelines:\n  - name: x{char}\n")
    with pytest.raises(SpecErrors) as raised:
        load_specs(tmp_path)
    [error] = raised.value.errors
    assert error.line == 2 and "invalid YAML" in error.message and error.file == tmp_path / "bad.yaml"
