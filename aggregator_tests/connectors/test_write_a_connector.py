"""docs/connectors/write-a-connector.md: its example connector is run, registered beside the real ones, and
behaves as the guide says (a declaration is all a type needs to be validated, built and read)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from connectors.connector_type import ConnectorType
from connectors.registry import CONNECTOR_TYPES, _registry
from connectors.source import Source

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "write-a-connector.md"


@pytest.fixture(scope="module")
def example() -> ConnectorType:
    (code,) = re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.DOTALL | re.MULTILINE)
    # A real module, as connectors/<name>/connector.py would be: pydantic resolves annotations through it.
    module = types.ModuleType("write_a_connector_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, str(GUIDE), "exec"), module.__dict__)  # noqa: S102 (our own docs, on purpose)
    finally:
        del sys.modules[module.__name__]
    connector = module.CONNECTOR
    assert isinstance(connector, ConnectorType)
    return connector


def test_the_example_registers_beside_the_real_connectors(example: ConnectorType) -> None:
    registry = _registry((*CONNECTOR_TYPES.values(), example))
    assert registry["numbers"].stream_type == "numbers"
    assert example.incremental_by == "declared cursor"


def test_the_example_is_a_source_that_reads_incrementally(example: ConnectorType) -> None:
    source = example.build({"count": 25})
    assert isinstance(source, Source)
    assert source.check() == "25 numbers"
    stream = example.stream_model.model_validate({"type": "numbers", "batch_size": 10, "incremental": True})
    assert example.incremental(stream, "append") and not example.incremental(stream, "replace")
    batches = list(source.read(stream))
    assert [len(b.rows) for b in batches] == [10, 10, 5] and batches[-1].state == {"cursor": 25}
    more = example.build({"count": 27})
    assert isinstance(more, Source)
    assert [row for b in more.read(stream, state={"cursor": 25}) for row in b.rows] == [(26, 676), (27, 729)]


def test_the_example_rejects_what_its_models_do_not_allow(example: ConnectorType) -> None:
    with pytest.raises(ValidationError):
        example.build({})  # count is required
    with pytest.raises(ValidationError):
        TypeAdapter(example.stream_model).validate_python({"type": "numbers", "batch_size": 0})
