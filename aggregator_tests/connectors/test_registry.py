"""One registry of connector types (issue 10, item 8): the spec's literals, the resource classes, the JSON
Schema of connection configs and the options reference of docs/connectors/ all come from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import jsonschema
import pytest
from pydantic import TypeAdapter, ValidationError

from aggregator.pipelines.connections import STREAM_TYPE_OF, Connection, ConnectionType, resource_class
from aggregator.pipelines.spec import SourceSpec
from aggregator.pipelines.streams import STREAM_MODELS, Stream
from aggregator_tests.testapi import LocalApi
from connectors.connector_type import ConnectorType
from connectors.reference import INDEX, index_section, options_section, render, render_index
from connectors.registry import CONNECTOR_TYPES, _registry
from connectors.rest import RestApiResource
from connectors.source import Source

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_spec_literals_and_stream_models_are_derived_from_the_registry() -> None:
    assert get_args(ConnectionType) == tuple(CONNECTOR_TYPES)
    assert STREAM_TYPE_OF == {c.name: c.stream_type for c in CONNECTOR_TYPES.values()}
    assert set(STREAM_MODELS) == {c.stream_model for c in CONNECTOR_TYPES.values()}
    streams = TypeAdapter(Stream)
    for connector in CONNECTOR_TYPES.values():
        tag = connector.stream_type
        # The union dispatches on the tag to the connector's own model, whose validation then applies.
        with pytest.raises(ValidationError) as exc:
            streams.validate_python({"type": tag, "not_an_option": 1})
        assert all(e["loc"][0] == tag for e in exc.value.errors())
    with pytest.raises(ValidationError, match="files"):
        Connection.model_validate({"type": "ftp"})


def test_a_registered_type_is_everywhere_a_spec_can_name_it() -> None:
    """The point of one declaration: a type registered once is a valid connection type, its stream a valid
    source stream, its incremental rule the one sources follow, with nothing else to edit."""
    for connector in CONNECTOR_TYPES.values():
        Connection.model_validate({"type": connector.name})
        assert type(TypeAdapter(Stream).validate_python(_minimal_stream(connector))) is connector.stream_model


def _minimal_stream(connector: ConnectorType) -> dict[str, object]:
    minimal: dict[str, dict[str, object]] = {"files": {"type": "file", "path": "*.csv"}, "sql": {"type": "sql", "table": "t"},
            "rest": {"type": "rest", "path": "/x"}, "redis": {"type": "redis", "stream": "s"},
            "rabbitmq": {"type": "rabbitmq", "queue": "q"}, "nats": {"type": "nats", "stream": "s"},
            "mqtt": {"type": "mqtt", "topics": ["t/#"], "client_id": "c"},
            }
    return minimal.get(connector.name, {"type": connector.stream_type})


@pytest.mark.parametrize(("stream", "mode", "incremental"), [
    ({"type": "file", "path": "*.csv"}, "append", True),  # files track what they loaded
    ({"type": "file", "path": "*.csv"}, "replace", False),
    ({"type": "sql", "table": "t"}, "append", False),
    ({"type": "sql", "table": "t", "cursor_column": "id"}, "append", True),
    ({"type": "rest", "path": "/x", "incremental": {"cursor_path": "id"}}, "append", True),
    ({"type": "redis", "stream": "s"}, "append", True),  # message streams: the broker position is the cursor
    ({"type": "rabbitmq", "queue": "q"}, "append", True),
])
def test_incremental_comes_from_the_connector(stream: dict[str, object], mode: str, incremental: bool) -> None:
    source = SourceSpec.model_validate({"name": "s", "connection": "c", "stream": stream, "write_mode": mode})
    assert source.incremental is incremental


def test_a_cursor_with_replace_is_refused_by_the_connectors_rule() -> None:
    with pytest.raises(ValidationError, match="replace"):
        SourceSpec.model_validate({"name": "s", "connection": "c", "write_mode": "replace",
                                   "stream": {"type": "sql", "table": "t", "cursor_column": "id"}})


def test_registry_refuses_a_duplicate_name_or_stream_type() -> None:
    rest = CONNECTOR_TYPES["rest"]
    with pytest.raises(ValueError, match="registered twice"):
        _registry((rest, rest))
    with pytest.raises(ValueError, match="both declare stream type 'rest'"):
        _registry((rest, ConnectorType("rest2", rest.resource, rest.stream_model, "x")))


def test_a_resource_that_is_not_a_source_cannot_be_declared() -> None:
    import dagster as dg

    class NotASource(dg.ConfigurableResource):
        url: str

    with pytest.raises(TypeError, match="does not implement Source"):
        ConnectorType("x", NotASource, CONNECTOR_TYPES["rest"].stream_model, "x")


@pytest.mark.parametrize("name", list(CONNECTOR_TYPES))
def test_every_connector_is_a_source(name: str) -> None:
    """check/discover/read with one signature each: the CLI calls them without inspecting signatures."""
    cls = resource_class(name)
    assert issubclass(cls, Source)
    import inspect

    params = list(inspect.signature(cls.discover).parameters.values())[1:]
    assert [p.name for p in params] == ["stream"] and params[0].default is None
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


def test_docs_index_lists_every_registered_type() -> None:
    text = (DOCS / "connectors" / INDEX).read_text()
    assert render_index(text, index_section()) == text, "stale connector index: run python -m connectors.reference"
    for connector in CONNECTOR_TYPES.values():
        assert f"| `{connector.name}` | `{connector.stream_type}` |" in text
        assert (DOCS / "connectors" / connector.page).exists()


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
