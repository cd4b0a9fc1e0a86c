"""Type drift never goes silent and never depends on the batch size (issue 10, item 2).

Records come from the local HTTP API (page-number pagination, 10 records a page) through the REST connector
into a real SQLite or PostgreSQL warehouse. Each case is loaded with several batch sizes; the outcome (the
table's columns, types and rows, or the error) and the recorded schema changes must be identical."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.sql import SqlDestination
from aggregator_tests.testapi import LocalApi, running_api
from connectors.rest import RestApiResource, RestStream

BATCH_SIZES = (1, 7, RestStream.model_fields["batch_size"].default)
POLICIES = ("evolve", "freeze", "discard")


@pytest.fixture(scope="module")
def local_api() -> Iterator[LocalApi]:
    with running_api() as api:
        yield api


def _load(api: LocalApi, dest: SqlDestination, table: str, batch_size: int, policy: str,
          mode: str = "append") -> dict[str, Any]:
    """Load the API's items into `table`; the outcome as comparable data."""
    stream = RestStream.model_validate({
        "path": "/items/page_number", "records_path": "data", "batch_size": batch_size,
        "pagination": {"type": "page_number", "page_size": 10, "total_pages_path": "total_pages"},
    })
    resource = RestApiResource(base_url=api.url)
    try:
        result = dest.load(table, resource.read(stream), mode,  # type: ignore[arg-type]
                           schema_policy=policy, primary_key=("id",) if mode == "merge" else ())  # type: ignore[arg-type]
    except SchemaChangeError as exc:
        return {"error": str(exc).replace(table, "<table>"), "table": dest.describe(table).columns}
    info = dest.describe(table)
    with dest.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {dest.quote(table)} ORDER BY id")).mappings().all()
    return {
        "columns": dict(info.columns),
        "rows": [dict(r) for r in rows],
        "changes": list(result.schema_changes),
    }


def _same_outcome_for_every_batch_size(api: LocalApi, dest: SqlDestination, policy: str, tag: str,
                                       mode: str = "append") -> dict[str, Any]:
    outcomes = {bs: _load(api, dest, f"drift_{tag}_{bs}", bs, policy, mode) for bs in BATCH_SIZES}
    first = outcomes[BATCH_SIZES[0]]
    for batch_size, outcome in outcomes.items():
        assert outcome == first, f"batch_size {batch_size} differs from batch_size {BATCH_SIZES[0]}"
    return first


def _items(values: list[Any], **more: list[Any]) -> list[dict[str, Any]]:
    items = []
    for i, value in enumerate(values):
        item: dict[str, Any] = {"id": i + 1, "v": value}
        item.update({k: v[i] for k, v in more.items() if i < len(v)})
        items.append(item)
    return items


def test_integer_column_sending_strings_on_page_3_fails_whatever_the_batch_size(
    local_api: LocalApi, warehouse_url: str
) -> None:
    """The reported case: an integer column starts sending strings on page 3. With batch_size 100 the
    documented SchemaChangeError fired; with the default batch size the column became TEXT holding '0',
    '169' with no error and no note. Now every batch size fails the same way and commits nothing."""
    local_api.state.items = _items([i * 13 for i in range(20)] + [f"n{i}" for i in range(10)])
    dest = SqlDestination(url=warehouse_url)
    outcome = _same_outcome_for_every_batch_size(local_api, dest, "evolve", "page3")
    assert outcome["error"].startswith("table <table>: column 'v' is integer but the source now sends text")
    assert outcome["table"] == ()  # the load was one transaction: no table was left behind


@pytest.mark.parametrize("policy", POLICIES)
def test_widening_and_discarding_are_recorded_the_same_for_every_batch_size(
    local_api: LocalApi, warehouse_url: str, policy: str
) -> None:
    """An existing integer column receives floats and then strings in one load: evolve widens then fails,
    freeze fails at once, discard drops the values that do not fit and records how many it dropped."""
    dest = SqlDestination(url=warehouse_url)
    local_api.state.items = _items(list(range(5)))
    for bs in BATCH_SIZES:
        _load(local_api, dest, f"drift_existing_{policy}_{bs}", bs, policy)
    local_api.state.items = _items([1, 2, 2.5, 3, "x", 4.5, "y"] * 3)
    outcomes = {bs: _load(local_api, dest, f"drift_existing_{policy}_{bs}", bs, policy) for bs in BATCH_SIZES}
    assert len({repr(o) for o in outcomes.values()}) == 1, outcomes
    outcome = outcomes[1]
    if policy == "evolve":
        assert "column 'v' is float but the source now sends text" in outcome["error"]
    elif policy == "freeze":
        assert "column 'v' is integer but the source now sends float values; schema_policy 'freeze'" in outcome["error"]
    else:
        assert outcome["changes"] == ["discarded 6 float value(s) of integer column v",
                                      "discarded 6 text value(s) of integer column v"]
        values = [r["v"] for r in outcome["rows"]]
        assert values.count(None) == 12
        assert sorted(v for v in values if v is not None) == sorted([0, 1, 2, 3, 4] + [1, 2, 3] * 3)


def _generated(seed: int) -> list[dict[str, Any]]:
    """Records whose columns drift at random: widenings, unsafe changes, NULL-first and late columns."""
    rng = random.Random(seed)
    kinds = [
        lambda: rng.randint(-5, 500),
        lambda: rng.random() * 100,
        lambda: f"s{rng.randint(0, 9)}",
        lambda: (dt.date(2026, 1, 1) + dt.timedelta(days=rng.randint(0, 300))).isoformat(),
        lambda: (dt.datetime(2026, 1, 1) + dt.timedelta(minutes=rng.randint(0, 10**5))).isoformat() + "Z",
        lambda: rng.random() < 0.5,
        lambda: None,
    ]
    columns = {}
    for name in ("a", "b", "c", "d"):
        # Mostly one kind, with a chance of drifting to one other kind from a random row on.
        base, other = rng.sample(range(len(kinds)), 2)
        start, drift_at = rng.randint(0, 20), rng.randint(0, 40)
        columns[name] = [None if i < start else kinds[other if i >= drift_at and rng.random() < 0.3 else base]()
                         for i in range(40)]
    return [{"id": i + 1, **{n: values[i] for n, values in columns.items()}} for i in range(40)]


@pytest.mark.parametrize("seed", range(4))
def test_generated_drift_gives_the_same_outcome_for_every_batch_size(
    local_api: LocalApi, warehouse_url: str, seed: int
) -> None:
    """Differential: any mix of types, NULL-first columns and late columns gives one outcome per policy,
    whatever the batch size (each policy on a fresh table, then again on the table the first load made)."""
    dest = SqlDestination(url=warehouse_url)
    local_api.state.items = _generated(seed)
    for policy in POLICIES:
        _same_outcome_for_every_batch_size(local_api, dest, policy, f"g{seed}_{policy}")
        _same_outcome_for_every_batch_size(local_api, dest, policy, f"g{seed}_{policy}")


def test_null_first_and_late_columns_are_typed_by_their_first_value(
    local_api: LocalApi, warehouse_url: str
) -> None:
    """A column whose first values are NULL is not created as text: its first value types it."""
    local_api.state.items = _items([None, None, 3, 4], late=[None, None, None, "2026-01-02T03:04:05Z"])
    dest = SqlDestination(url=warehouse_url)
    outcome = _same_outcome_for_every_batch_size(local_api, dest, "evolve", "nullfirst")
    types = {k: v.upper() for k, v in outcome["columns"].items()}
    assert types["v"] == "BIGINT"
    assert types["late"] in ("DATETIME", "TIMESTAMP")
    # A raw SELECT returns SQLite's stored text; PostgreSQL's a datetime.
    assert str(outcome["rows"][3]["late"]).startswith("2026-01-02 03:04:05")
