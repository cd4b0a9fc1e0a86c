"""Type inference for records and the bounded prefetch thread."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest

from connectors.batches import ColumnType as T
from connectors.prefetch import prefetch
from connectors.records import TypeTracker


def test_types_are_inferred_per_column_and_values_converted() -> None:
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    batch = TypeTracker().from_records([
        {"i": 1, "f": 1, "d": Decimal("1.50"), "ts": aware, "mixed": 1, "nested": {"a": [1]}},
        {"i": 2, "f": 2.5, "d": None, "ts": None, "mixed": "x", "nested": None},
    ])
    # A column whose values change type keeps them as they are, with their types in first-seen order: the
    # destination applies its schema policy to each (see test_type_drift.py).
    assert batch.types == {"i": T.INTEGER, "f": T.INTEGER, "d": T.FLOAT, "ts": T.TIMESTAMP, "mixed": T.INTEGER,
                           "nested": T.TEXT}
    assert batch.mixed == {"f": (T.INTEGER, T.FLOAT), "mixed": (T.INTEGER, T.TEXT)}
    assert batch.rows[0] == (1, 1, 1.5, dt.datetime(2024, 1, 1, 10), 1, '{"a":[1]}')
    assert batch.rows[1] == (2, 2.5, None, None, "x", None)


def test_records_with_different_keys_are_aligned() -> None:
    batch = TypeTracker().from_records([{"a": 1, "b": 2}, {"b": 3, "c": "x"}, {"a": 4}])
    assert batch.columns == ("a", "b", "c")
    assert batch.rows == [(1, 2, None), (None, 3, "x"), (4, None, None)]


def test_a_column_keeps_its_type_across_batches() -> None:
    tracker = TypeTracker()
    tracker.from_records([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    later = tracker.from_records([{"a": None, "b": 5, "c": None}, {"a": None, "b": 6, "c": None}])
    # all-NULL keeps integer; a never-seen all-NULL column is untyped (its first value will type it);
    # integers for a text column stay integers here: the destination stores them as text.
    assert later.types == {"a": T.INTEGER, "b": T.INTEGER, "c": T.TEXT}
    assert later.untyped == {"c"}
    assert later.rows == [(None, 5, None), (None, 6, None)]


def test_prefetch_yields_everything_and_reraises_producer_errors() -> None:
    def produce() -> Iterator[int]:
        yield from range(5)
        raise RuntimeError("page 6 failed")

    seen = []
    with pytest.raises(RuntimeError, match="page 6 failed"):
        for item in prefetch(produce):
            seen.append(item)  # noqa: PERF402  (the loop is what is under test)
    assert seen == [0, 1, 2, 3, 4]


def test_prefetch_stays_bounded_and_stops_when_the_consumer_does() -> None:
    produced = []

    def produce() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    iterator = prefetch(produce, depth=2)
    assert next(iterator) == 0
    iterator.close()  # the consumer goes away: the thread must stop, not read the whole source
    assert len(produced) <= 5
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]
