"""Fixtures for message-stream tests: a fresh stream on each real broker, and the pipeline spec reading it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator_tests.pipelines.conftest import compile_specs, settings_for, spec_dir  # noqa: F401 (fixtures)
from aggregator_tests.streams.brokers import BROKERS, Broker

SPEC = """
connections:
  broker:
    type: {type}
    config: {config}
pipelines:
  - name: events
    sources:
      - name: messages
        connection: broker
        stream: {stream}
        write_mode: append
        columns: {{id: {{type: integer}}}}
"""


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    made = BROKERS[request.param]()
    try:
        yield made
    finally:
        made.close()


def write_spec(directory: Path, broker: Broker, **stream: object) -> Path:
    path = directory / "events.yaml"
    path.write_text(SPEC.format(type=broker.type, config=json.dumps(broker.config()),
                                stream=json.dumps({**broker.stream(), **stream})))
    return path
