"""The pipeline spec examples of docs/connectors/streams.md (```yaml spec blocks) load through the real spec
models and compile into a job with its message sensor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "streams.md"
SPEC_BLOCK = re.compile(r"^```yaml spec\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_page_has_a_spec_example() -> None:
    assert SPEC_BLOCK.findall(PAGE.read_text())


@pytest.mark.parametrize("text", SPEC_BLOCK.findall(PAGE.read_text()))
def test_spec_example_compiles_with_its_sensor(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "not-used")
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "example.yaml").write_text(text)
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"),
                              "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}"})
    defs = build_definitions(load_specs(specs_dir, uploads_root=settings.uploads_root), settings)
    sensor = defs.resolve_sensor_def("clicks_messages_sensor")
    assert sensor.job_name == "clicks_job"
