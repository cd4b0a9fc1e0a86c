"""The examples of docs/console/builder.md hold: the template file loads, instantiating it with the documented
parameters writes exactly the documented file (through the API's own `instance_file`), that file loads beside
the template, and the JSON answers shown are what the API's models accept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aggregator.pipelines.graph import build_graph
from aggregator.pipelines.load import collect_templates, load_specs, read_raw
from aggregator.pipelines.templates import instantiate
from aggregator.proxy.api.models import VersionInfo
from aggregator.proxy.api.schema_routes import Preview
from aggregator.proxy.api.template_routes import instance_file

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = (DOCS / "console" / "builder.md").read_text()
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", PAGE, re.DOTALL)
JSON_BLOCKS = re.findall(r"```json\n(.*?)```", PAGE, re.DOTALL)
ORIGIN = re.compile(r"^# Made from template (\w+) \(([^)]+)\) with (\{.*\})\n")


def test_the_page_has_its_examples_and_is_linked_from_the_console_page() -> None:
    assert len(YAML_BLOCKS) == 2 and len(JSON_BLOCKS) == 2
    assert "(console/builder.md)" in (DOCS / "console.md").read_text()


def test_the_template_example_instantiates_to_the_documented_file(tmp_path: Path) -> None:
    template_text, instance_text = YAML_BLOCKS
    origin = ORIGIN.match(instance_text)
    assert origin, "the documented instance starts with the comment the API writes"
    name, file, params = origin.group(1), origin.group(2), json.loads(origin.group(3))
    (tmp_path / file).write_text(template_text)
    found, errors = collect_templates([read_raw(tmp_path / file)])
    assert not errors and name in found
    pipeline = instantiate(name, found[name][0], params)
    assert instance_file(name, file, params, pipeline) == instance_text
    # The instance is an ordinary pipeline beside the template's file.
    (tmp_path / f"{pipeline['name']}.yaml").write_text(instance_text)
    specs = load_specs(tmp_path)
    assert [p.name for p, _file, _index in specs.pipelines] == [pipeline["name"]]
    build_graph(specs)


@pytest.mark.parametrize(("index", "model"), [(0, VersionInfo), (1, Preview)], ids=["versions", "preview"])
def test_the_json_answers_shown_are_the_apis(index: int, model: type[VersionInfo | Preview]) -> None:
    model.model_validate_json(JSON_BLOCKS[index])
