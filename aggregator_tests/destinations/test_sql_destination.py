"""SqlDestination on real SQLite, PostgreSQL and MariaDB: write modes, schema evolution, state, bulk paths."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.batches import ColumnType as T

TYPES = {"id": T.INTEGER, "name": T.TEXT, "amount": T.INTEGER, "at": T.TIMESTAMP}


def batch(rows: list[tuple[Any, ...]], state: dict[str, Any] | None = None, **types: T) -> Batch:
    columns = ("id", "name", "amount", "at") if not types else tuple(types)
    return Batch(columns=columns, types=types or TYPES, rows=rows, state=state)


def rows(dest: SqlDestination, table: str = "t", order: str = "id") -> list[tuple[Any, ...]]:
    with dest.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {dest.quote(table)} ORDER BY {order}"))]


AT = dt.datetime(2024, 5, 1, 12, 30)


def test_append_twice_then_replace(dest: SqlDestination) -> None:
    first = [(1, "a", 10, AT), (2, "b", 20, None)]
    dest.load("t", [batch(first)], "append")
    result = dest.load("t", [batch([(3, "c", 30, AT)])], "append")
    assert result.rows_written == 1 and result.table.row_count == 3
    assert [r[0] for r in rows(dest)] == [1, 2, 3]
    assert rows(dest)[0][3] in (AT, "2024-05-01 12:30:00.000000")
    result = dest.load("t", [batch([(9, "z", 90, AT)])], "replace")
    assert result.table.row_count == 1 and [r[0] for r in rows(dest)] == [9]


def test_merge_upserts_and_dedupes_within_a_batch(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 10, AT), (2, "b", 20, AT)])], "merge", primary_key=["id"])
    update = batch([(2, "b2", 21, AT), (3, "c", 30, AT), (2, "b3", 22, AT)])  # key 2 twice: the last wins
    dest.load("t", [update, batch([(1, "a2", 11, None)])], "merge", primary_key=["id"])
    assert [r[:3] for r in rows(dest)] == [(1, "a2", 11), (2, "b3", 22), (3, "c", 30)]


def test_merge_into_a_table_created_by_append(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 10, AT)])], "append")
    dest.load("t", [batch([(1, "a2", 11, AT), (2, "b", 20, AT)])], "merge", primary_key=["id"])
    assert [r[:3] for r in rows(dest)] == [(1, "a2", 11), (2, "b", 20)]


def test_merge_keeps_a_column_a_later_batch_does_not_send(dest: SqlDestination) -> None:
    """Batches of one merge load with different columns: a row updated by a batch without `amount` keeps the
    table's `amount` (it is not set to NULL); a new row from such a batch has none. The same on every dialect
    (MySQL stages every batch in one table, where the absent column is NULL)."""
    dest.load("t", [batch([(1, "a", 10, AT), (2, "b", 20, AT)])], "merge", primary_key=["id"])
    without_amount = batch([(1, "a2"), (3, "c")], id=T.INTEGER, name=T.TEXT)
    with_amount = batch([(2, "b2", 21, AT)])
    again_without = batch([(2, "b3")], id=T.INTEGER, name=T.TEXT)
    dest.load("t", [without_amount, with_amount, again_without], "merge", primary_key=["id"])
    assert [r[:3] for r in rows(dest)] == [(1, "a2", 10), (2, "b3", 21), (3, "c", None)]


def test_merge_needs_a_primary_key(dest: SqlDestination) -> None:
    with pytest.raises(ValueError, match="merge.* needs a primary_key"):
        dest.load("t", [batch([(1, "a", 10, AT)])], "merge")


def test_schema_evolves_new_columns_and_safe_widening(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 10, AT)])], "append")
    wider = batch([(2, 2.5, "new")], id=T.INTEGER, amount=T.FLOAT, note=T.TEXT)
    result = dest.load("t", [wider], "append")
    assert set(result.schema_changes) == {
        "added column note (text)", "widened amount from integer to float",
        # The batch lacks two of the table's columns: reported too (issue 20), and kept.
        "column name is no longer sent: kept, NULL in new rows (keep)",
        "column at is no longer sent: kept, NULL in new rows (keep)",
    }
    assert result.missing_columns == ("name", "at")
    assert [(r[0], r[2], r[4]) for r in rows(dest)] == [(1, 10, None), (2, 2.5, "new")]


def test_incompatible_type_change_fails_clearly_and_changes_nothing(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 10, AT)])], "append")
    bad = batch([(2, "lots")], id=T.INTEGER, amount=T.TEXT)
    with pytest.raises(SchemaChangeError, match=r"column 'amount' is integer but the source now sends text"):
        dest.load("t", [batch([(5, "x", 1, AT)]), bad], "append")
    assert [r[0] for r in rows(dest)] == [1]  # the first batch of the failed load was rolled back too


def test_freeze_rejects_new_columns_and_discard_drops_them(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 10, AT)])], "append")
    extra = batch([(2, "b", "surplus")], id=T.INTEGER, name=T.TEXT, extra=T.TEXT)
    with pytest.raises(SchemaChangeError, match="new column 'extra'.*'freeze'"):
        dest.load("t", [extra], "append", schema_policy="freeze")
    result = dest.load("t", [extra], "append", schema_policy="discard")
    assert result.table.columns[-1][0] == "at" and len(result.table.columns) == 4
    assert [r[:2] for r in rows(dest)] == [(1, "a"), (2, "b")]


def test_source_column_names_are_normalized(dest: SqlDestination) -> None:
    odd = Batch(columns=("Order ID", "2nd-choice"), types={"Order ID": T.INTEGER, "2nd-choice": T.TEXT}, rows=[(1, "x")])
    result = dest.load("t", [odd], "append")
    assert [c for c, _ in result.table.columns] == ["order_id", "_2nd_choice"]


def test_config_identifiers_are_validated_and_values_bound(dest: SqlDestination) -> None:
    with pytest.raises(ValueError, match="invalid table name"):
        dest.load('t"; DROP TABLE x; --', [batch([(1, "a", 1, AT)])], "append")
    with pytest.raises(ValueError, match="invalid primary key column"):
        dest.load("t", [batch([(1, "a", 1, AT)])], "merge", primary_key=["id; --"])
    nasty = "'); DROP TABLE t; --"
    dest.load("t", [batch([(1, nasty, 1, AT)])], "append")
    assert rows(dest)[0][1] == nasty


def test_state_commits_with_rows_and_a_failure_commits_neither(dest: SqlDestination) -> None:
    assert dest.read_state("s") is None
    result = dest.load("t", [batch([(1, "a", 1, AT)], state=None), batch([(2, "b", 2, AT)], state={"cursor": 2})],
                       "append", state_key="s")
    assert (result.state_before, result.state_after, result.rows_read) == (None, {"cursor": 2}, 2)
    assert dest.read_state("s") == {"cursor": 2}

    def failing() -> Iterator[Batch]:
        yield batch([(3, "c", 3, AT)], state={"cursor": 3})
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        dest.load("t", failing(), "append", state_key="s")
    assert dest.read_state("s") == {"cursor": 2} and [r[0] for r in rows(dest)] == [1, 2]
    result = dest.load("t", [], "append", state_key="s")  # nothing new: state and rows untouched
    assert result.state_before == result.state_after == {"cursor": 2}


def test_empty_replace_keeps_columns_and_empties_the_table(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 1, AT)])], "append")
    result = dest.load("t", [], "replace")
    assert result.table.row_count == 0 and len(result.table.columns) == 4


def test_bulk_paths_never_insert_row_by_row(dest: SqlDestination) -> None:
    """PostgreSQL loads through COPY (no INSERT statements at all); SQLite through one executemany per batch;
    MySQL through one executemany per batch into the stage, then one INSERT … SELECT into the table."""
    statements: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, executemany))

    sa.event.listen(dest.engine, "before_cursor_execute", record)
    try:
        data = [batch([(i, "n", i, AT) for i in range(b * 1000, (b + 1) * 1000)]) for b in range(3)]
        assert dest.load("t", data, "append").table.row_count == 3000
    finally:
        sa.event.remove(dest.engine, "before_cursor_execute", record)
    inserts = [(s, many) for s, many in statements if s.lstrip().upper().startswith("INSERT INTO \"T\"") or
               s.lstrip().upper().startswith("INSERT INTO T")]
    if dest.dialect == "postgresql":
        assert inserts == []
    elif dest.dialect == "mysql":
        staged = [many for s, many in statements if s.startswith("INSERT INTO _stage_")]
        assert staged == [True] * 3
        assert [s.split(" SELECT ")[0] for s, _ in inserts] == ["INSERT INTO t (id, name, amount, at)"]
    else:
        assert len(inserts) == 3 and all(many for _, many in inserts)


def test_replace_is_atomic_for_concurrent_readers(pg_db: Any) -> None:
    """Readers see the old table (100 rows) or the new one (250), never a half-loaded one. The load waits for
    the reader to sample between its batches, and the test waits for a sample of the committed table:
    synchronised on progress, not on sleeps that a busy machine stretches."""
    dest = SqlDestination(url=pg_db.sqlalchemy_url)
    dest.load("t", [batch([(i, "old", i, AT) for i in range(100)])], "append")
    seen: list[int] = []
    sampled = threading.Condition()
    stop = threading.Event()
    failure: list[sa.exc.SQLAlchemyError] = []

    def reader() -> None:
        engine = sa.create_engine(pg_db.sqlalchemy_url)
        try:
            while not stop.is_set():
                with engine.connect() as conn:
                    count = conn.execute(sa.text("SELECT COUNT(*) FROM t")).scalar_one()
                with sampled:
                    seen.append(count)
                    sampled.notify_all()
        except sa.exc.SQLAlchemyError as exc:  # handed to the test thread, which would otherwise wait forever
            failure.append(exc)
            with sampled:
                sampled.notify_all()
        finally:
            engine.dispose()

    def wait_for(predicate: Callable[[], bool]) -> None:
        with sampled:
            while not predicate():
                if failure or not thread.is_alive():
                    raise AssertionError(f"the reader stopped: {failure}")
                sampled.wait(1)

    def more_samples_than(count: int) -> Callable[[], bool]:
        return lambda: len(seen) > count

    def batches() -> Iterator[Batch]:
        for b in range(5):
            wait_for(more_samples_than(len(seen)))  # a reader sample lands between every two batches
            yield batch([(i, "new", i, AT) for i in range(b * 50, (b + 1) * 50)])

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        dest.load("t", batches(), "replace")
        wait_for(lambda: 250 in seen)
    finally:
        stop.set()
        thread.join()
    assert set(seen) == {100, 250}, sorted(set(seen))


def test_primary_key_is_a_constraint_only_for_merge(dest: SqlDestination) -> None:
    dest.load("t", [batch([(1, "a", 1, AT), (1, "b", 2, AT)])], "append", primary_key=["id"])
    assert len(rows(dest)) == 2  # append keeps repeated keys; merge would dedupe


def test_skipped_bad_rows_are_reported(dest: SqlDestination, tmp_path: Any) -> None:
    from connectors.files import FilesResource, FileStream

    (tmp_path / "a.csv").write_text("id,qty\n1,2\n2\n3,4\n")
    files = FilesResource(base_dir=str(tmp_path))
    result = dest.load("t", files.read(FileStream(path="a.csv", on_bad_row="skip")), "append")
    assert (result.rows_written, result.rows_skipped) == (2, 1)


@pytest.mark.parametrize(("mode", "expected"), [
    ("append", [1, 1, 2, 2, 3]),  # everything twice, plus the new row
    ("replace", [1, 2, 3]),  # only the second load
    ("merge", [1, 2, 3]),  # keys updated in place
])
def test_write_modes_on_a_second_load(dest: SqlDestination, mode: str, expected: list[int]) -> None:
    keys = ["id"] if mode == "merge" else []
    dest.load("t", [batch([(1, "a", 1, AT), (2, "b", 2, AT)])], mode, primary_key=keys)  # type: ignore[arg-type]
    second = batch([(1, "a2", 10, AT), (2, "b2", 20, AT), (3, "c", 30, AT)]) if mode != "append" else \
        batch([(1, "a", 1, AT), (2, "b", 2, AT), (3, "c", 30, AT)])
    dest.load("t", [second], mode, primary_key=keys)  # type: ignore[arg-type]
    assert [r[0] for r in rows(dest, order="id, name")] == expected
    if mode != "append":
        assert [r[2] for r in rows(dest)] == [10, 20, 30]


def test_repeated_merges_add_no_redundant_index(dest: SqlDestination) -> None:
    for _ in range(3):
        dest.load("t", [batch([(1, "a", 1, AT)])], "merge", primary_key=["id"])
    with dest.engine.connect() as conn:
        assert [ix for ix in sa.inspect(conn).get_indexes("t") if ix.get("unique")] == []  # the primary key suffices


def test_a_failed_first_load_does_not_break_the_next_one(dest: SqlDestination) -> None:
    """Regression: the state table created inside a rolled-back first load must be created again."""
    def failing() -> Iterator[Batch]:
        yield batch([(1, "a", 1, AT)], state={"cursor": 1})
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        dest.load("t", failing(), "append", state_key="s")
    assert dest.read_state("s") is None
    dest.load("t", [batch([(1, "a", 1, AT)], state={"cursor": 1})], "append", state_key="s")
    assert dest.read_state("s") == {"cursor": 1}


_SHAPES = [("id", "name"), ("id", "amount"), ("id", "name", "amount")]


@given(st.lists(st.tuples(st.sampled_from(_SHAPES), st.lists(st.integers(1, 6), min_size=1, max_size=4)),
                min_size=1, max_size=5))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_merge_of_batches_with_any_columns_matches_the_model(
        dest: SqlDestination, loads: list[tuple[tuple[str, ...], list[int]]]) -> None:
    """Generated: batches of random column sets and keys in one merge load give, on every dialect, what a
    row-by-row upsert of only the columns each batch sends gives."""
    table = f"m_{uuid.uuid4().hex[:8]}"
    dest.load(table, [batch([(k, f"n{k}", k * 10) for k in range(1, 7)], id=T.INTEGER, name=T.TEXT,
                            amount=T.INTEGER)], "merge", primary_key=["id"])
    model = {k: {"name": f"n{k}", "amount": k * 10} for k in range(1, 7)}
    batches = []
    for n, (shape, keys) in enumerate(loads):
        values = [tuple(k if c == "id" else (f"v{n}" if c == "name" else n) for c in shape) for k in keys]
        batches.append(Batch(columns=shape, types={c: TYPES[c] for c in shape}, rows=values))
        for k in keys:
            model[k].update({c: (f"v{n}" if c == "name" else n) for c in shape if c != "id"})
    dest.load(table, batches, "merge", primary_key=["id"])
    got = [r[:3] for r in rows(dest, table)]
    assert got == [(k, model[k]["name"], model[k]["amount"]) for k in sorted(model)]
