"""The YAML examples in docs/pipelines.md load and compile; the published JSON Schema is current."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from aggregator.pipelines.compile import build_resources
from aggregator.pipelines.graph import build_graph
from aggregator.pipelines.json_schema import spec_json_schema
from aggregator.pipelines.load import load_specs
from aggregator.settings import EXAMPLE_PIPELINES_DIR, load_settings

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
EXAMPLES = BLOCK.findall((DOCS / "pipelines.md").read_text())


class _EditorLoader(yaml.SafeLoader):
    """Reads dates as strings, as an editor's YAML language server does when it applies the JSON Schema."""


_EditorLoader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _editor_load(text: str) -> object:
    return yaml.load(text, Loader=_EditorLoader)  # noqa: S506 (_EditorLoader is a SafeLoader)


@pytest.mark.parametrize("text", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_doc_example_compiles(text: str, tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(text)
    specs = load_specs(tmp_path)
    build_graph(specs)
    build_resources(specs, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    assert specs.pipelines or specs.connections


def test_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 6


def test_published_json_schema_is_current() -> None:
    published = json.loads((DOCS / "spec.schema.json").read_text())
    assert published == json.loads(json.dumps(spec_json_schema(), sort_keys=True)), (
        "regenerate with: aggregator schema -o docs/spec.schema.json"
    )


@pytest.mark.parametrize("path", sorted(EXAMPLE_PIPELINES_DIR.parent.rglob("*.yaml")), ids=lambda p: p.name)
def test_samples_and_examples_satisfy_the_json_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads((DOCS / "spec.schema.json").read_text()))
    for document in [_editor_load(path.read_text()), *(_editor_load(t) for t in EXAMPLES)]:
        errors = [e.message for e in validator.iter_errors(document)]
        assert not errors, errors


def test_json_schema_rejects_what_validation_rejects() -> None:
    validator = jsonschema.Draft202012Validator(json.loads((DOCS / "spec.schema.json").read_text()))
    assert list(validator.iter_errors({"pipelines": [{"name": "x", "schedul": {}}]}))
    assert list(validator.iter_errors({"connections": {"db": {"type": "sql", "config": {"url": 5}}}}))
