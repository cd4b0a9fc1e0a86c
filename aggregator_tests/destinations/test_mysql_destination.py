"""MySQL/MariaDB as a warehouse, on the real server: what its implicit DDL commits could break (failed loads, a
crash between the swap and the state commit, overlapping loads) and its type edge cases as a destination.

The write modes, schema evolution, missing-column policies and the SIGKILL test run on MariaDB through the
shared destination suite (conftest.py adds mysql to its dialects); these are the cases particular to MySQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.errors import DestinationError
from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from aggregator_tests.destinations.kill_after_swap import source as ids_up_to
from aggregator_tests.mariadb import admin_url, lock_waiters
from connectors.batches import Batch
from connectors.batches import ColumnType as T
from connectors.records import TypeHints, TypeTracker
from connectors.sql import SqlResource, SqlStream

ROOT = Path(__file__).resolve().parents[2]
U64_MAX = 2**64 - 1


@pytest.fixture
def dest(mysql_url: str) -> SqlDestination:
    return SqlDestination(url=mysql_url)


def select(dest: SqlDestination, sql: str) -> list[tuple[Any, ...]]:
    with dest.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def columns(dest: SqlDestination, table: str) -> list[str]:
    return [name for name, _ in dest.describe(table).columns]


# -- failures leave the table and the cursor as they were --------------------------------------------------


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_a_source_failing_after_a_column_was_added_leaves_table_and_cursor_unchanged(
    dest: SqlDestination, mode: WriteMode,
) -> None:
    """The regression that had MySQL refused: batch 2 adds a column (DDL, an implicit commit), then the source
    fails. Nothing of the load may be visible, and the rerun loads every row once."""
    keys = ("id",) if mode == "merge" else ()
    dest.load("events", [TypeTracker().from_records([{"id": 0}], state={"cursor": 0})], mode, primary_key=keys,
              state_key="p.events")

    def failing(state: dict[str, Any] | None) -> Iterator[Batch]:
        assert state == {"cursor": 0}
        tracker = TypeTracker()
        yield tracker.from_records([{"id": 1}], state={"cursor": 1})
        yield tracker.from_records([{"id": 2, "added_mid_load": "x"}], state={"cursor": 2})
        raise RuntimeError("the source failed after a column was added")

    with pytest.raises(RuntimeError, match="after a column was added"):
        dest.load("events", failing, mode, primary_key=keys, state_key="p.events")
    assert select(dest, "SELECT id FROM events") == [(0,)]
    assert dest.read_state("p.events") == {"cursor": 0}
    assert columns(dest, "events") == ["id"]  # the column was added to the stage only
    assert not [t for t in sa.inspect(dest.engine).get_table_names() if t.startswith("_stage_")]

    def rerun(state: dict[str, Any] | None) -> Iterator[Batch]:
        tracker = TypeTracker()
        yield tracker.from_records([{"id": 1}, {"id": 2, "added_mid_load": "x"}], state={"cursor": 2})

    result = dest.load("events", rerun, mode, primary_key=keys, state_key="p.events")
    assert (result.state_before, result.state_after) == ({"cursor": 0}, {"cursor": 2})
    assert select(dest, "SELECT id, added_mid_load FROM events ORDER BY id") == [(0, None), (1, None), (2, "x")]


def test_a_value_refused_while_staging_names_its_row_and_commits_nothing(dest: SqlDestination) -> None:
    dest.load("t", [Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(1,)], state={"c": 1})], "append",
              state_key="s")
    too_big = [Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(2,)], state={"c": 2}, origin="page 1"),
               Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(3,), (2**63,)], state={"c": 3}, origin="page 2")]
    with pytest.raises(DestinationError, match=r"page 2, row 2, column id: 9223372036854775808 does not fit"):
        dest.load("t", too_big, "append", state_key="s")
    assert select(dest, "SELECT id FROM t") == [(1,)] and dest.read_state("s") == {"c": 1}


def test_a_row_refused_in_the_data_transaction_commits_nothing_but_added_columns_may_remain(
    dest: SqlDestination,
) -> None:
    """A NULL key passes the stage (which declares no key) and is refused by the table's primary key inside the
    one data transaction: no row and no cursor move. The new column was added before that transaction began (it
    is nullable, so it changes no existing row) and stays, as docs/connectors/destinations.md says."""
    dest.load("t", [Batch(columns=("id", "v"), types={"id": T.INTEGER, "v": T.TEXT}, rows=[(1, "a")])], "merge",
              primary_key=["id"], state_key="s")
    types = {"id": T.INTEGER, "v": T.TEXT, "note": T.TEXT}
    bad = [Batch(columns=("id", "v", "note"), types=types, rows=[(1, "b", "n"), (2, "c", None)], state={"c": 2}),
           Batch(columns=("id", "v", "note"), types=types, rows=[(None, "d", None)], state={"c": 3})]
    with pytest.raises(DestinationError, match="nothing was committed.*cannot be null"):
        dest.load("t", bad, "merge", primary_key=["id"], state_key="s")
    assert select(dest, "SELECT * FROM t") == [(1, "a", None)]
    assert dest.read_state("s") is None


# -- replace: the swap and the state commit ----------------------------------------------------------------


def test_replace_killed_between_swap_and_state_commit_loses_and_duplicates_nothing(dest: SqlDestination) -> None:
    """The swap (RENAME TABLE) commits by itself, so a crash can fall between it and the state commit. The load
    then left the new table with the old cursor: the rerun reads from that cursor again and replaces the table
    again, ending exactly where an uninterrupted load would have."""
    dest.load("events", ids_up_to(5), "replace", state_key="events")
    assert select(dest, "SELECT id FROM events ORDER BY id") == [(i,) for i in range(1, 6)]
    victim = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kill_after_swap.py")), dest.url, "8"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True, text=True, timeout=120,
        start_new_session=True, check=False,  # it is meant to die: its return code is asserted below
    )
    assert victim.returncode == -9 and victim.stdout == "swapped\n", victim.stderr
    assert select(dest, "SELECT id FROM events ORDER BY id") == [(6,), (7,), (8,)]  # the swap happened
    assert dest.read_state("events") == {"cursor": 5}  # its cursor did not
    result = dest.load("events", ids_up_to(8), "replace", state_key="events")
    assert (result.state_before, result.state_after, result.rows_written) == ({"cursor": 5}, {"cursor": 8}, 3)
    assert select(dest, "SELECT id FROM events ORDER BY id") == [(6,), (7,), (8,)]
    leftovers = [t for t in sa.inspect(dest.engine).get_table_names() if t.startswith(("_stage_", "_old_"))]
    assert leftovers == []  # the swap dropped the old table before the kill; the stage became the table


# -- overlapping loads -------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_an_overlapping_load_of_one_stream_waits_and_reads_the_cursor_the_first_committed(
    dest: SqlDestination, mysql_url: str,
) -> None:
    """The first load holds its source open (between batches, schema changed); the second starts meanwhile. It
    must wait for the first to commit and then start from its cursor: every id once."""
    release = threading.Event()
    reads: list[dict[str, Any] | None] = []
    errors: list[BaseException] = []

    def source(upto: int, hold: bool) -> Callable[[dict[str, Any] | None], Iterator[Batch]]:
        def read(state: dict[str, Any] | None) -> Iterator[Batch]:
            reads.append(state)
            start = (state or {}).get("cursor", 0) + 1
            tracker = TypeTracker()
            yield tracker.from_records([{"id": i} for i in range(start, start + 2)])
            if hold:
                assert release.wait(60)
            yield tracker.from_records([{"id": i, "more": "m"} for i in range(start + 2, upto + 1)],
                                       state={"cursor": upto})
        return read

    def run(upto: int, hold: bool) -> None:
        try:
            dest.load("events", source(upto, hold), "append", state_key="p.events")
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            errors.append(exc)

    first = threading.Thread(target=run, args=(6, True))
    first.start()
    wait_for(lambda: len(reads) == 1, "the first load to read its source")
    second = threading.Thread(target=run, args=(10, False))
    second.start()
    try:
        wait_for(lambda: lock_waiters(mysql_url) > 0, "the second load to queue on the stream's lock")
        assert len(reads) == 1  # it waits before reading the cursor, not after
    finally:
        release.set()
        first.join(60)
        second.join(60)
    assert errors == []
    assert reads == [None, {"cursor": 6}]
    assert select(dest, "SELECT id FROM events ORDER BY id") == [(i,) for i in range(1, 11)]


# -- types -------------------------------------------------------------------------------------------------


@pytest.fixture
def latin1_database() -> Iterator[str]:
    """A database whose default character set cannot hold emoji: the destination's tables must not inherit it."""
    engine = sa.create_engine(admin_url())
    name = f"agg_test_latin1_{os.getpid()}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET latin1")
        yield sa.engine.make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        engine.dispose()


def test_edge_values_round_trip_exactly(latin1_database: str) -> None:
    """utf8mb4 in a latin1 database, text longer than TEXT's 64 KiB, JSON of nested values, booleans that stay
    booleans on the next load, microseconds, and an aware timestamp stored as its UTC wall time."""
    dest = SqlDestination(url=latin1_database)
    long_text = "x" * 70_000 + "🚀"
    records = [
        {"id": 1, "name": "Zoë 🚀 漢字", "doc": {"a": [1, {"b": None}], "é": "ü"}, "ok": True,
         "at": dt.datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        {"id": 2, "name": long_text, "doc": [], "ok": False, "at": dt.datetime(2024, 5, 1, 23, 59, 59, 999999)},
    ]
    dest.load("t", [TypeTracker().from_records(records)], "merge", primary_key=["id"])
    again = dest.load("t", [TypeTracker().from_records([{"id": 3, "name": "", "doc": {}, "ok": True,
                                                          "at": None}])], "merge", primary_key=["id"])
    assert again.schema_changes == ()  # BOOLEAN (TINYINT(1)) reads back as boolean, DATETIME(6) as timestamp
    rows = select(dest, "SELECT id, name, doc, ok, at FROM t ORDER BY id")
    assert [r[1] for r in rows] == ["Zoë 🚀 漢字", long_text, ""]
    assert [json.loads(r[2]) for r in rows] == [{"a": [1, {"b": None}], "é": "ü"}, [], {}]
    assert [r[3] for r in rows] == [1, 0, 1]
    assert [r[4] for r in rows] == [dt.datetime(2024, 5, 1, 10, 30, 0, 123456),
                                     dt.datetime(2024, 5, 1, 23, 59, 59, 999999), None]
    assert dict(dest.describe("t").columns)["name"] == "LONGTEXT"


@pytest.fixture
def mysql_source(mysql_url: str) -> str:
    """A MySQL source table with the values that break loads: BIGINT UNSIGNED at its maximum, DECIMAL(38,10)
    beyond a float's precision, zero dates (stored under a permissive SQL mode, as old schemas hold them)."""
    engine = sa.create_engine(mysql_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION sql_mode = ''")
            conn.exec_driver_sql("CREATE TABLE src (id INT PRIMARY KEY, big BIGINT UNSIGNED, amount DECIMAL(38, 10), "
                                 "born DATE, seen DATETIME)")
            conn.exec_driver_sql(f"INSERT INTO src VALUES (1, {U64_MAX}, 1234567890123456789012345678.0123456789, "
                                 "'0000-00-00', '0000-00-00 00:00:00'), (2, 7, -0.0000000001, '2024-02-29', NULL)")
    finally:
        engine.dispose()
    return mysql_url


def test_mysql_to_mysql_keeps_unsigned_bigint_and_decimal_exact_and_writes_no_zero_date(
    mysql_source: str, dest: SqlDestination,
) -> None:
    res = SqlResource(url=mysql_source)
    # As integers, the unsigned maximum fits no warehouse's BIGINT: the load says which row and what to declare.
    with pytest.raises(DestinationError, match=rf"column big: {U64_MAX} does not fit .*type: text"):
        dest.load("copy", res.read(SqlStream(table="src", columns=["id", "big"])), "replace")
    assert "copy" not in sa.inspect(dest.engine).get_table_names()
    hints = TypeHints({"big": T.TEXT, "amount": T.TEXT})
    stream = SqlStream(table="src", columns=["id", "big", "amount", "born", "seen"])
    dest.load("copy", res.read(stream, hints=hints), "replace")
    rows = select(dest, "SELECT id, big, amount, born, seen FROM copy ORDER BY id")
    assert [(r[1], Decimal(r[2])) for r in rows] == [
        (str(U64_MAX), Decimal("1234567890123456789012345678.0123456789")), ("7", Decimal("-0.0000000001"))]
    assert rows[0][3:] == (None, None)  # zero dates arrive as NULL and are written as NULL
    assert rows[1][3] == dt.date(2024, 2, 29)
    # Declared nothing, DECIMAL loads as float (the portable numeric type): close, not exact.
    dest.load("floats", res.read(SqlStream(table="src", columns=["id", "amount"])), "replace")
    assert select(dest, "SELECT amount FROM floats ORDER BY id")[0][0] == pytest.approx(1.2345678901234568e27)


def test_the_warehouse_session_refuses_zero_dates(dest: SqlDestination) -> None:
    """Whatever the server's SQL mode, the destination's own sessions are strict: a zero date is an error."""
    dest.load("d", [Batch(columns=("day",), types={"day": T.DATE}, rows=[(dt.date(2024, 1, 1),)])], "append")
    with dest.engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="Incorrect date value"):
        conn.exec_driver_sql("INSERT INTO d (day) VALUES ('0000-00-00')")


def test_merge_into_a_table_created_by_append_with_a_text_key(dest: SqlDestination) -> None:
    """Append creates text columns as LONGTEXT, which InnoDB cannot index whole: the first merge narrows the key
    to VARCHAR(255) before adding its unique index. Keys compare byte for byte (utf8mb4_bin), as on PostgreSQL."""
    types = {"sku": T.TEXT, "qty": T.INTEGER}
    dest.load("t", [Batch(columns=("sku", "qty"), types=types, rows=[("a", 1), ("A", 2)])], "append")
    dest.load("t", [Batch(columns=("sku", "qty"), types=types, rows=[("a", 10), ("b", 3), ("b", 4)])], "merge",
              primary_key=["sku"])
    assert select(dest, "SELECT sku, qty FROM t ORDER BY sku") == [("A", 2), ("a", 10), ("b", 4)]


def test_a_merge_into_a_table_whose_text_key_pads_makes_it_compare_exactly(dest: SqlDestination) -> None:
    """A table created before text keys were NO PAD has a utf8mb4_bin key, whose unique index takes `a ` for
    `a`: the merge overwrote row `a`. The merge now changes the key's collation first (test_text_keys.py holds
    the case for new tables)."""
    with dest.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, "
                             "v BIGINT) ENGINE=InnoDB")
        conn.exec_driver_sql("INSERT INTO t VALUES ('a', 1)")
    dest.load("t", [Batch(columns=("k", "v"), types={"k": T.TEXT, "v": T.INTEGER}, rows=[("a ", 2)])], "merge",
              primary_key=["k"])
    assert sorted(select(dest, "SELECT k, v FROM t")) == [("a", 1), ("a ", 2)]
