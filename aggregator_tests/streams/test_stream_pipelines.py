"""A pipeline loading each broker's messages: exact rows, then only the new ones, through real Dagster runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.streams.brokers import Broker
from aggregator_tests.streams.conftest import write_spec


def loaded(warehouse_url: str) -> list[int]:
    return [r[0] for r in query(warehouse_url, "SELECT id FROM events_messages ORDER BY id")]


def test_each_run_loads_exactly_the_new_messages(
    broker: Broker, spec_dir: Path, warehouse_url: str, instance: dg.DagsterInstance,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    write_spec(spec_dir, broker)
    defs = compile_specs(warehouse_url)
    if broker.type == "mqtt":
        materialize_all(defs, instance)  # the first run creates the persistent session messages queue in
    broker.publish(range(120))
    first = materialize_all(defs, instance)
    assert loaded(warehouse_url) == list(range(120))
    [event] = first.get_asset_materialization_events()
    assert event.materialization.metadata["rows_read"].value == 120

    broker.publish(range(120, 200))
    second = materialize_all(compile_specs(warehouse_url), instance)
    assert loaded(warehouse_url) == list(range(200))
    [event] = second.get_asset_materialization_events()
    assert event.materialization.metadata["rows_read"].value == 80

    materialize_all(compile_specs(warehouse_url), instance)  # nothing new: nothing loaded, nothing lost
    assert loaded(warehouse_url) == list(range(200))
