"""One registry of connector types (issue 10, item 8): the spec's literals, the resource classes, the JSON
Schema of connection configs and the options reference of docs/connectors/ all come from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import jsonschema
import pytest

from aggregator.pipelines.connections import STREAM_TYPE_OF, ConnectionType, resource_class
from aggregator.pipelines.streams import STREAM_MODELS
from aggregator_tests.testapi import LocalApi
from connectors.reference import options_section, render
from connectors.registry import CONNECTOR_TYPES
from connectors.rest import RestApiResource
from connectors.source import Source

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_spec_literals_and_stream_models_match_the_registry() -> None:
    assert get_args(ConnectionType) == tuple(CONNECTOR_TYPES)
    assert STREAM_TYPE_OF == {c.name: c.stream_type for c in CONNECTOR_TYPES.values()}
    assert set(STREAM_MODELS) == {c.stream_model for c in CONNECTOR_TYPES.values()}


@pytest.mark.parametrize("name", list(CONNECTOR_TYPES))
def test_every_connector_is_a_source(name: str) -> None:
    """check/discover/read with one signature each: the CLI calls them without inspecting signatures."""
    cls = resource_class(name)
    assert issubclass(cls, Source)
    import inspect

    params = list(inspect.signature(cls.discover).parameters.values())[1:]
    # `hints`: discovery types columns as a load with the source's declared types does (issue 22).
    assert [p.name for p in params] == ["stream", "hints"] and all(p.default is None for p in params)
    assert list(inspect.signature(cls.read).parameters)[1:] == ["stream", "state", "window", "hints"]


@pytest.mark.parametrize("name", list(CONNECTOR_TYPES))
def test_docs_list_every_option_with_its_default(name: str) -> None:
    """docs/connectors/<type>.md carries the generated options reference; regenerate with
    `python -m connectors.reference`."""
    connector = CONNECTOR_TYPES[name]
    text = (DOCS / "connectors" / f"{name}.md").read_text()
    section = options_section(connector)
    assert render(text, section) == text, "stale options reference: run python -m connectors.reference"
    for field in connector.resource_class().model_fields:
        assert f"| `{field}` |" in section


def test_json_schema_types_connection_configs_including_nested_blocks() -> None:
    """Connection config was `additionalProperties: true`: editors could neither complete nor check it."""
    validator = jsonschema.Draft202012Validator(json.loads((DOCS / "spec.schema.json").read_text()))

    def errors(config: dict[str, object], conn_type: str = "rest") -> list[str]:
        doc = {"connections": {"api": {"type": conn_type, "config": config}}}
        return [e.message for e in validator.iter_errors(doc)]

    assert not errors({"base_url": "https://x", "auth": {"type": "api_key", "key": {"env": "K"}}})
    assert errors({"base_url": "https://x", "requests_per_secnd": 5})
    assert errors({"base_url": "https://x", "auth": {"type": "api_key", "keyy": {"env": "K"}}})
    assert errors({"url": "sqlite://", "bogus": 1}, "sql")


def test_default_check_says_what_a_404_at_base_url_proves(api: LocalApi) -> None:
    """Without check_path the check GETs base_url, which many APIs answer with 404: that is reported as a
    reachable host with unproven credentials, not as a failure; with check_path the request is authenticated."""
    message = RestApiResource(base_url=api.url).check()
    assert "HTTP 404: the API answers" in message and "set check_path" in message
    ok = RestApiResource(base_url=api.url, check_path="items/offset").check()
    assert ok.startswith(f"GET {api.url}/items/offset: HTTP 200")
