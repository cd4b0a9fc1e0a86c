"""Columns that stop arriving are reported, and never erased silently (issue 20, item 5).

The reported case: with `b` dropped and `a` renamed to `a2` at the source, the run succeeded, replace mode set
all previous values of `a` and `b` to NULL, and the only message was `added column a2`. Each case here loads a
table, then loads it again from a source that lost a column (drop) or renamed one (drop + add), in every write
mode and every `missing_columns` policy, on SQLite and PostgreSQL. What the table holds is compared with a small
model of the documented behaviour over generated data (which ids come back, which are new)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch, ColumnType

MODES = ("append", "merge", "replace")
POLICIES = ("keep", "fail", "accept")
Row = dict[str, Any]


def batch(rows: list[Row], columns: tuple[str, ...]) -> Batch:
    types = {c: ColumnType.INTEGER if c == "id" else ColumnType.TEXT for c in columns}
    return Batch(columns=columns, types=types, rows=[tuple(r.get(c) for c in columns) for r in rows])


def generated(seed: int, scenario: str) -> tuple[list[Row], list[Row], tuple[str, ...]]:
    """Rows of the first load (id, a, b), rows of the second and the columns it sends."""
    rng = random.Random(seed)
    first = [{"id": i, "a": f"a{i}", "b": f"b{i}"} for i in range(1, rng.randint(3, 8))]
    back = [r["id"] for r in first if rng.random() < 0.6]  # ids the source sends again
    new = list(range(100, 100 + rng.randint(0, 3)))
    second = [{"id": i, "a": f"a{i}'", "a2": f"a{i}'", "b": f"b{i}'"} for i in back + new]
    columns = ("id", "a") if scenario == "drop" else ("id", "a2", "b")
    return first, [{c: r[c] for c in columns} for r in second], columns


def expected(first: list[Row], second: list[Row], columns: tuple[str, ...], mode: str, policy: str,
             missing: list[str]) -> list[Row] | str:
    """The documented outcome: the table's rows (missing keys mean NULL), or 'error'."""
    if policy == "fail":
        return "error"
    if mode == "append":
        return [*first, *second]
    if mode == "merge":
        merged = {r["id"]: dict(r) for r in first}
        for r in second:
            merged.setdefault(r["id"], {}).update(r)
        return list(merged.values())
    if policy == "accept":  # replace: the table follows the source
        return [dict(r) for r in second]
    old = {r["id"]: r for r in first}  # replace, keep: each row keeps its old values by key
    return [{**{c: old.get(r["id"], {}).get(c) for c in missing}, **r} for r in second]


def table_rows(dest: SqlDestination, table: str) -> tuple[list[str], list[Row]]:
    with dest.engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {dest.quote(table)}"))
        columns = list(result.keys())
        return columns, [dict(r) for r in result.mappings()]


def canonical(rows: list[Row], columns: list[str]) -> list[tuple[Any, ...]]:
    return sorted((tuple(r.get(c) for c in columns) for r in rows), key=repr)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scenario", ["drop", "rename"])
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("mode", MODES)
def test_a_column_that_stops_arriving_is_reported_and_handled_by_policy(
    dest: SqlDestination, mode: str, policy: str, scenario: str, seed: int,
) -> None:
    first, second, columns = generated(seed, scenario)
    table = f"t_{mode}_{policy}_{scenario}_{seed}"
    keys = ("id",)
    dest.load(table, [batch(first, ("id", "a", "b"))], mode, primary_key=keys)  # type: ignore[arg-type]
    missing = ["b"] if scenario == "drop" else ["a"]
    want = expected(first, second, columns, mode, policy, missing)
    try:
        result = dest.load(table, [batch(second, columns)], mode, primary_key=keys,  # type: ignore[arg-type]
                           missing_columns=policy)  # type: ignore[arg-type]
    except SchemaChangeError as exc:
        assert want == "error", exc
        assert f"no longer sends column(s) {missing[0]}" in str(exc) and "nothing was committed" in str(exc)
        names, rows = table_rows(dest, table)
        assert canonical(rows, names) == canonical(first, names)  # the table is as the first load left it
        return
    assert want != "error"
    assert result.missing_columns == tuple(missing)
    changes = list(result.schema_changes)
    if scenario == "rename":
        assert "added column a2 (text)" in changes
    [reported] = [c for c in changes if re.search(rf"\bcolumn {missing[0]}\b", c)]
    if mode == "replace" and policy == "accept":
        assert reported == f"dropped column {missing[0]}: no longer sent by the source (missing_columns 'accept')"
    elif mode == "replace":
        kept = sum(1 for r in second if r["id"] in {f["id"] for f in first})
        assert reported == f"column {missing[0]} is no longer sent: kept its values for {kept} row(s) by id"
    else:
        assert reported == f"column {missing[0]} is no longer sent: kept, NULL in new rows ({policy})"
    names, rows = table_rows(dest, table)
    assert (missing[0] in names) == (not (mode == "replace" and policy == "accept"))
    assert isinstance(want, list)
    assert canonical(rows, names) == canonical(want, names)


@pytest.mark.parametrize("policy", ["keep", "accept"])
def test_replace_without_a_primary_key_fails_rather_than_erase_a_column(dest: SqlDestination, policy: str) -> None:
    """The reported case: replace without a key cannot carry old values over; `keep` fails, `accept` drops."""
    first = [{"id": i, "a": f"a{i}", "b": f"b{i}"} for i in range(1, 1001)]
    dest.load("t", [batch(first, ("id", "a", "b"))], "replace")
    renamed = [{"id": i, "a2": f"a{i}"} for i in range(1, 1001)]
    if policy == "keep":
        with pytest.raises(SchemaChangeError, match=r"no longer sends column\(s\) a, b .*'replace' would erase"):
            dest.load("t", [batch(renamed, ("id", "a2"))], "replace", missing_columns="keep")
        text = "LONGTEXT" if dest.dialect == "mysql" else "TEXT"  # MySQL's TEXT holds only 64 KiB
        assert dest.describe("t").columns == (("id", "BIGINT"), ("a", text), ("b", text))
        return
    result = dest.load("t", [batch(renamed, ("id", "a2"))], "replace", missing_columns="accept")
    assert result.missing_columns == ("a", "b")
    assert result.schema_changes[0] == "added column a2 (text)"
    assert [name for name, _ in dest.describe("t").columns] == ["id", "a2"]


def test_an_empty_load_reports_no_missing_columns(dest: SqlDestination) -> None:
    """An incremental load with nothing new sends no columns at all: that is not every column disappearing."""
    dest.load("t", [batch([{"id": 1, "a": "x", "b": "y"}], ("id", "a", "b"))], "append")
    result = dest.load("t", [], "append", missing_columns="fail")
    assert result.missing_columns == () and result.rows_written == 0
