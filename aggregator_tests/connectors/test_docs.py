"""Every YAML and Python example in docs/connectors/*.md is loaded: YAML through the real config models,
Python by running it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from aggregator.destinations import SqlDestination
from connectors.files import FilesResource, FileStream
from connectors.registry import CONNECTOR_TYPES
from connectors.rest import RestApiResource, RestStream
from connectors.secrets import deferred
from connectors.sql import SqlResource

DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors"
BLOCK = re.compile(r"^```(yaml|python)\n(.*?)^```", re.DOTALL | re.MULTILINE)
RESOURCES = {c.name: c.resource for c in CONNECTOR_TYPES.values()}
STREAMS: dict[str, type[BaseModel]] = {c.stream_type: c.stream_model for c in CONNECTOR_TYPES.values()}


def blocks(kind: str) -> list[Any]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for number, match in enumerate(m for m in BLOCK.finditer(page.read_text()) if m.group(1) == kind):
            found.append(pytest.param(match.group(2), id=f"{page.stem}-{number}"))
    return found


def env_vars(value: Any) -> Any:
    """{env: NAME} -> dg.EnvVar(NAME) by the one resolver pipeline specs use."""
    return deferred(value, "docs example")


def test_docs_have_examples() -> None:
    assert {p.stem for p in DOCS.glob("*.md")} >= {"rest", "sql", "files", "destinations"}
    assert len(blocks("yaml")) >= 15 and len(blocks("python")) >= 4


@pytest.mark.parametrize("text", blocks("yaml"))
def test_yaml_example_validates(text: str) -> None:
    doc = yaml.safe_load(text)
    assert set(doc) <= {"connection", "stream"} and doc
    if "connection" in doc:
        conn = doc["connection"]
        resource = RESOURCES[conn["type"]](**env_vars(conn["config"]))
        if conn["type"] == "sql":  # a sql connection is also usable as a destination
            SqlDestination(**env_vars(conn["config"]))
        assert resource is not None
    if "stream" in doc:
        stream = STREAMS[doc["stream"]["type"]].model_validate(doc["stream"])
        assert stream.model_dump()["type"] == doc["stream"]["type"]


@pytest.mark.parametrize("text", blocks("python"))
def test_python_example_runs(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(text, "<docs example>", "exec"), {})  # noqa: S102  (our own docs, on purpose)


def test_unknown_fields_in_examples_would_fail() -> None:
    """Guards the test above: the models reject a misspelt field, so a stale doc example cannot pass."""
    with pytest.raises(ValueError):
        RestStream.model_validate({"type": "rest", "path": "/x", "record_path": "data"})
    with pytest.raises(ValueError):
        FileStream.model_validate({"type": "file", "path": "*.csv", "delimeter": ";"})


@pytest.mark.parametrize(
    ("cls", "valid"),
    [(FilesResource, {"base_dir": "."}), (SqlResource, {"url": "sqlite://"}),
     (RestApiResource, {"base_url": "http://127.0.0.1"})],
)
def test_resources_reject_misspelt_options(cls: type, valid: dict[str, str]) -> None:
    cls(**valid)
    with pytest.raises(ValueError, match=r"unknown option bogus; allowed: "):
        cls(**valid, bogus=1)
