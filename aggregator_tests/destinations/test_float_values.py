"""Float values a warehouse cannot store: stored exactly, or the load is refused with the row named and nothing
committed. SQLite stored NaN as NULL and MySQL/MariaDB stored NaN and ±infinity as NULL, without an error.

Runs on SQLite, PostgreSQL and MySQL/MariaDB (conftest.py)."""

from __future__ import annotations

import math
import sys
import uuid
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.destinations.errors import DestinationError
from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch
from connectors.batches import ColumnType as T

NAN, INF = float("nan"), float("inf")
# What each dialect's float column stores as itself besides finite numbers, as its documentation says:
# PostgreSQL's double precision has NaN and ±Infinity, SQLite's REAL ±Inf (NaN binds as NULL), MySQL's DOUBLE none.
STORED_SPECIALS = {"postgresql": {"nan", "inf", "-inf"}, "sqlite": {"inf", "-inf"}, "mysql": set()}
EDGES = [NAN, INF, -INF, -0.0, 0.0, 5e-324, -5e-324, sys.float_info.min, 2.225073858507201e-308, sys.float_info.max,
         -sys.float_info.max, sys.float_info.epsilon, 0.1]


def special(value: float) -> str | None:
    return None if math.isfinite(value) else "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def same(stored: Any, sent: float) -> bool:
    """Exactly the value sent: NaN is NaN; -0.0 equals 0.0, as SQL compares them (SQLite and MySQL/MariaDB
    keep no sign of zero: docs/connectors/destinations.md)."""
    if isinstance(stored, float) and math.isnan(stored):
        return math.isnan(sent)
    return stored is not None and stored == sent


def batch(values: list[float], *, first_id: int = 1, arrow: bool = False, origin: str = "", state: Any = None) -> Batch:
    rows: Any = [(first_id + i, v) for i, v in enumerate(values)]
    if arrow:
        rows = ArrowRows(pa.table({"id": pa.array([r[0] for r in rows], pa.int64()),
                                   "x": pa.array(values, pa.float64())}))
    return Batch(columns=("id", "x"), types={"id": T.INTEGER, "x": T.FLOAT}, rows=rows, origin=origin, state=state)


def table_rows(dest: SqlDestination, table: str) -> list[tuple[Any, ...]]:
    with dest.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT id, x FROM {dest.quote(table)} ORDER BY id"))]


def stage_tables(dest: SqlDestination) -> list[str]:
    return [t for t in sa.inspect(dest.engine).get_table_names() if t.startswith(("_stage_", "_old_"))]


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_a_nan_or_infinity_the_dialect_cannot_store_is_refused_naming_its_row(
    dest: SqlDestination, mode: WriteMode,
) -> None:
    """The regression: MySQL/MariaDB wrote NaN and ±infinity as NULL, SQLite NaN, and the load succeeded."""
    keys = ["id"] if mode == "merge" else []
    dest.load("t", [batch([1.5], state={"page": 1})], mode, primary_key=keys, state_key="s")
    stored = STORED_SPECIALS[dest.dialect]
    for value in (NAN, INF, -INF):
        later = [batch([2.5], first_id=2, origin="page 1", state={"page": 2}),
                 batch([3.5, value], first_id=3, origin="page 2", state={"page": 3})]
        if special(value) in stored:
            continue
        with pytest.raises(DestinationError) as caught:
            dest.load("t", later, mode, primary_key=keys, state_key="s")
        message = str(caught.value)
        shown = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[special(value) or ""]
        key = " (id=4)" if keys else ""
        assert f"table t: page 2, row 2{key}, column x: {shown} cannot be stored" in message, message
        assert "allowed: finite numbers" in message and "Nothing was committed" in message
        assert table_rows(dest, "t") == [(1, 1.5)]
        assert dest.read_state("s") == {"page": 1}
        assert stage_tables(dest) == []
    # What the dialect can store round-trips.
    storable = [v for v in (NAN, INF, -INF) if special(v) in stored]
    dest.load("t", [batch([2.5, *storable], first_id=2, state={"page": 2})], mode, primary_key=keys, state_key="s")
    got = table_rows(dest, "t")
    sent = ([(1, 1.5)] if mode != "replace" else []) + [(2 + i, v) for i, v in enumerate([2.5, *storable])]
    assert len(got) == len(sent) and all(g[0] == s[0] and same(g[1], s[1]) for g, s in zip(got, sent, strict=True))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.sampled_from(EDGES), st.floats()), min_size=1, max_size=6),
       mode=st.sampled_from(["append", "merge", "replace"]), arrow=st.booleans())
def test_every_float_round_trips_exactly_or_the_load_is_refused_and_nothing_changes(
    dest: SqlDestination, values: list[float], mode: WriteMode, arrow: bool,
) -> None:
    table = f"f_{uuid.uuid4().hex[:8]}"
    keys = ["id"] if mode == "merge" else []
    dest.load(table, [batch([0.5], first_id=0, state={"n": 0})], mode, primary_key=keys, state_key=table)
    refused = any(special(v) not in STORED_SPECIALS[dest.dialect] for v in values if not math.isfinite(v))
    load = [batch(values, arrow=arrow, state={"n": 1})]
    if refused:
        with pytest.raises(DestinationError, match=rf"table {table}: the source, row \d+.*, column x: .*cannot be stored"):
            dest.load(table, load, mode, primary_key=keys, state_key=table)
        assert table_rows(dest, table) == [(0, 0.5)]
        assert dest.read_state(table) == {"n": 0}
        assert stage_tables(dest) == []
        return
    dest.load(table, load, mode, primary_key=keys, state_key=table)
    got = table_rows(dest, table)
    sent = ([(0, 0.5)] if mode != "replace" else []) + [(1 + i, v) for i, v in enumerate(values)]
    assert len(got) == len(sent), got
    for (gid, gx), (sid, sx) in zip(got, sent, strict=True):
        assert gid == sid and same(gx, sx), (dest.dialect, mode, arrow, sx, gx)
    assert dest.read_state(table) == {"n": 1}
