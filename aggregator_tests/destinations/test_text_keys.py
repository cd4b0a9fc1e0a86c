"""Merge keys are compared byte for byte on every dialect: MySQL/MariaDB's utf8mb4_bin pads with spaces when it
compares, so its unique index took `a` and `a ` for one key and a merge overwrote one row with the other.

Runs on SQLite, PostgreSQL and MySQL/MariaDB (conftest.py)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.batches import ColumnType as T

TYPES = {"k": T.TEXT, "v": T.INTEGER}


def batch(rows: list[tuple[str, int]]) -> Batch:
    return Batch(columns=("k", "v"), types=TYPES, rows=rows)


def stored(dest: SqlDestination, table: str) -> dict[str, int]:
    with dest.engine.connect() as conn:
        return {k: v for k, v in conn.execute(sa.text(f"SELECT k, v FROM {dest.quote(table)}"))}


def test_keys_differing_in_trailing_spaces_are_two_rows(dest: SqlDestination) -> None:
    dest.load("t", [batch([("a", 1)])], "merge", primary_key=["k"])
    dest.load("t", [batch([("a ", 2), ("A", 3)])], "merge", primary_key=["k"])
    assert stored(dest, "t") == {"a": 1, "a ": 2, "A": 3}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.text(alphabet="aA \tß", max_size=4), min_size=1, max_size=8),
       appended_first=st.booleans())
def test_a_merge_keeps_one_row_per_distinct_key_and_its_last_value(
    dest: SqlDestination, keys: list[str], appended_first: bool,
) -> None:
    """Python's string equality is the oracle: the table holds one row per distinct key, with its last value,
    whether merge created the table or merged into one append created (its key index added later)."""
    table = f"k_{uuid.uuid4().hex[:8]}"
    rows = [(k, i) for i, k in enumerate(keys)]
    if appended_first:
        dest.load(table, [batch(rows[:1])], "append")
        rows = rows[1:] or rows
    dest.load(table, [batch(rows)], "merge", primary_key=["k"])
    assert stored(dest, table) == {k: i for i, k in enumerate(keys)}
