"""Column renames and exclusions (`columns: {src: {rename: name}}`, `{exclude: true}`) through real loads: on
SQLite and PostgreSQL, a SQL source (merge on a renamed key, the cursor on the source's column), a message
stream with nested payloads, and a generated differential test against a plain-Python model of the mapping."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aggregator.destinations.schema import column_name
from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.column_mapping import ColumnMapping, MappingConflict
from aggregator.pipelines.spec import SourceSpec
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.streams.brokers import RedisBroker
from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch, ColumnType
from connectors.records import TypeTracker

SQL_SPEC = """
connections:
  src: {type: sql, config: {url: "sqlite:///source.db"}}
pipelines:
  - name: crm
    sources:
      - name: people
        connection: src
        stream: {type: sql, table: people, cursor_column: updated_at}
        write_mode: merge
        primary_key: [person_id]
        columns:
          ID: {rename: person_id}
          FullName: {rename: full_name}
          ssn: {exclude: true}
          updated_at: {rename: changed_at}
          score: {type: text}
        preview_rows: 10
        sensitive_columns: [full_name]
        checks:
          - {type: not_null, columns: [person_id, full_name]}
"""


def _columns(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def test_renamed_columns_land_under_the_new_name_and_excluded_ones_nowhere(
    instance: dg.DagsterInstance, spec_dir: Path, warehouse_url: str,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    """Renamed columns hold exactly the source's values; `ssn` is in no table column, preview or schema
    metadata; a second run merges on the renamed key and reads only rows past the cursor (kept on the
    source's `updated_at`)."""
    with sqlite3.connect(spec_dir / "source.db") as conn:
        conn.execute("CREATE TABLE people (ID INTEGER, FullName TEXT, ssn TEXT, updated_at INTEGER, score REAL)")
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)",
                         [(1, "Ada", "111", 10, 1.5), (2, "Bo", "222", 11, None), (3, "Cy", "333", 12, 3.0)])
    (spec_dir / "crm.yaml").write_text(SQL_SPEC)
    first = materialize_all(compile_specs(warehouse_url), instance)
    assert sorted(_columns(warehouse_url, "crm_people")) == ["changed_at", "full_name", "person_id", "score"]
    assert query(warehouse_url, "SELECT person_id, full_name, changed_at, score FROM crm_people ORDER BY 1") == [
        (1, "Ada", 10, "1.5"), (2, "Bo", 11, None), (3, "Cy", 12, "3.0")]
    [event] = first.get_asset_materialization_events()
    metadata = event.materialization.metadata
    shown = json.dumps({k: str(v.value) for k, v in metadata.items()})
    assert "ssn" not in shown and "111" not in shown
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns] == [
        "person_id", "full_name", "changed_at", "score"]
    assert all(r.passed for r in first.get_asset_check_evaluations())

    with sqlite3.connect(spec_dir / "source.db") as conn:
        conn.execute("UPDATE people SET FullName = 'Bea', updated_at = 20 WHERE ID = 2")
        conn.execute("INSERT INTO people VALUES (4, 'Di', '444', 21, 4.0)")
    second = materialize_all(compile_specs(warehouse_url), instance)
    [event] = second.get_asset_materialization_events()
    assert event.materialization.metadata["rows_read"].value == 2  # the cursor read the source's updated_at
    assert query(warehouse_url, "SELECT person_id, full_name, changed_at FROM crm_people ORDER BY 1") == [
        (1, "Ada", 10), (2, "Bea", 20), (3, "Cy", 12), (4, "Di", 21)]


STREAM_SPEC = """
connections:
  bus: {{type: redis, config: {{}}}}
pipelines:
  - name: events
    sources:
      - name: readings
        connection: bus
        stream: {{type: redis, stream: {stream}, format: json, metadata_columns: false, nested: {{}}}}
        write_mode: append
        columns:
          id: {{rename: event_id}}
          device__site__code: {{rename: site}}
          device__kind: {{exclude: true}}
          readings: {{exclude: true}}
"""

PAYLOADS = [{"id": i, "device": {"kind": "meter", "site": {"code": f"s{i}"}},
             "readings": [{"at": k, "kwh": k * 0.5} for k in range(2)], "labels": ["a", "b"][: i % 2 + 1]}
            for i in range(1, 5)]


@pytest.fixture
def redis_stream() -> Iterator[RedisBroker]:
    broker = RedisBroker()
    try:
        yield broker
    finally:
        broker.close()


def test_a_message_stream_with_nested_payloads_is_mapped(
    redis_stream: RedisBroker, instance: dg.DagsterInstance, spec_dir: Path, warehouse_url: str,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    """Flattened `parent__child` columns are renamed and excluded like any other; excluding an array drops
    its child table, and the other child tables still link to their parent rows."""
    for doc in PAYLOADS:
        redis_stream.client.xadd(redis_stream.name, {"payload": json.dumps(doc)})
    (spec_dir / "events.yaml").write_text(STREAM_SPEC.format(stream=redis_stream.name))
    materialize_all(compile_specs(warehouse_url), instance)
    assert {c for c in _columns(warehouse_url, "events_readings") if not c.startswith("_dlt")} == {"event_id", "site"}
    assert query(warehouse_url, "SELECT event_id, site FROM events_readings ORDER BY 1") == [
        (i, f"s{i}") for i in range(1, 5)]
    engine = sa.create_engine(warehouse_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "events_readings__labels" in tables and "events_readings__readings" not in tables
    assert query(warehouse_url, "SELECT p.event_id, l.value FROM events_readings p JOIN events_readings__labels l "
                 "ON l._dlt_parent_id = p._dlt_id ORDER BY 1, 2") == [
        (1, "a"), (1, "b"), (2, "a"), (3, "a"), (3, "b"), (4, "a")]


def test_a_rename_onto_a_column_the_source_also_sends_fails_the_load(tmp_path: Path) -> None:
    """The spec cannot know every source column: a rename onto one it does not name is found in the batch,
    and the load fails naming both columns instead of writing one over the other."""
    batch = TypeTracker().from_records([{"a": 1, "b": 2}], origin="orders.json")
    with pytest.raises(MappingConflict, match=r"orders.json: columns 'a' and 'b' would both land in table column 'a'"):
        ColumnMapping(renames={"b": "a"}).batch(batch)
    dest = SqlDestination(url=f"sqlite:///{tmp_path / 'w.db'}")
    with pytest.raises(MappingConflict):
        dest.load("t", ColumnMapping(renames={"b": "a"}).batches([batch]), "replace")
    assert not sa.inspect(dest.engine).has_table("t")


def test_columnar_rows_stay_columnar_and_carry_the_table_names() -> None:
    table = pa.table({"a": pa.array([1, 2], pa.int64()), "b": pa.array(["x", "y"]), "c": pa.array([1.0, None])})
    batch = Batch(columns=("a", "b", "c"), types={"a": ColumnType.INTEGER, "b": ColumnType.TEXT,
                                                 "c": ColumnType.FLOAT}, rows=ArrowRows(table))
    mapped = ColumnMapping(renames={"a": "id", "c": "b"}, excluded=frozenset({"b"})).batch(batch)
    assert isinstance(mapped.rows, ArrowRows)
    assert mapped.columns == ("id", "b") == tuple(mapped.rows.table.column_names)
    assert mapped.types == {"id": ColumnType.INTEGER, "b": ColumnType.FLOAT}
    assert list(mapped.rows) == [(1, 1.0), (2, None)]


def test_mixed_and_untyped_columns_keep_their_flags_under_the_new_name() -> None:
    batch = TypeTracker().from_records([{"a": 1, "b": None, "c": 1}, {"a": "x", "b": None, "c": 2}])
    mapped = ColumnMapping(renames={"a": "alpha", "b": "beta"}, excluded=frozenset({"c"})).batch(batch)
    assert mapped.columns == ("alpha", "beta")
    assert mapped.seen_types("alpha") == (ColumnType.INTEGER, ColumnType.TEXT)
    assert mapped.untyped == frozenset({"beta"})


# The differential test: random source columns, renames and exclusions, loaded for real and compared with a
# plain-Python model of what the mapping means.
SOURCE_NAMES = ["a", "b", "c", "d", "Order ID", "x__y"]
TARGETS = ["a", "b", "p", "q"]


def _model(columns: list[str], rows: list[tuple[Any, ...]], renames: dict[str, str], excluded: set[str]
           ) -> dict[str, list[Any]] | None:
    """{table column: values} the load must leave, or None when two columns would land in one."""
    out: dict[str, list[Any]] = {}
    for i, column in enumerate(columns):
        if column in excluded:
            continue
        name = column_name(renames.get(column, column))
        if name in out:
            return None
        out[name] = [row[i] for row in rows]
    return out


def _statically_wrong(columns: set[str], renames: dict[str, str], excluded: set[str]) -> bool:
    """What validation must refuse: two renames onto one name, or onto a named column kept as it is."""
    named = set(renames) | excluded | columns
    kept = {c for c in named if c not in excluded and renames.get(c, c) == c}
    targets = list(renames.values())
    return len(set(targets)) != len(targets) or any(t != s and t in kept for s, t in renames.items())


_counter = itertools.count()


@given(
    columns=st.lists(st.sampled_from(SOURCE_NAMES), min_size=1, max_size=6, unique=True),
    renames=st.dictionaries(st.sampled_from(SOURCE_NAMES), st.sampled_from(TARGETS), max_size=4),
    excluded=st.sets(st.sampled_from(SOURCE_NAMES), max_size=3),
    typed=st.sets(st.sampled_from(SOURCE_NAMES), max_size=2),
    values=st.lists(st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31)), min_size=6, max_size=6),
                    min_size=1, max_size=5),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_loaded_table_matches_the_model_of_the_mapping(
    warehouse_url: str, columns: list[str], renames: dict[str, str], excluded: set[str], typed: set[str],
    values: list[list[int | None]],
) -> None:
    renames = {s: t for s, t in renames.items() if s not in excluded and s != t}
    spec_columns: dict[str, dict[str, Any]] = {c: {"exclude": True} for c in excluded}
    for source, target in renames.items():
        spec_columns[source] = {"rename": target}
    for column in typed - excluded - set(renames):
        spec_columns[column] = {"type": "integer"}
    try:
        spec = SourceSpec.model_validate({"name": "s", "connection": "c", "stream": {"type": "sql", "table": "t"},
                                          "columns": spec_columns})
    except ValidationError:
        assert _statically_wrong(set(typed - excluded - set(renames)), renames, excluded)
        event("refused by validation")
        return
    assert not _statically_wrong(set(typed - excluded - set(renames)), renames, excluded)
    rows = [tuple(v[: len(columns)]) for v in values]
    batch = TypeTracker(hints=spec.type_hints()).from_tuples(columns, rows, origin="generated")
    expected = _model(columns, rows, renames, excluded)
    table = f"gen_{next(_counter)}"
    dest = SqlDestination(url=warehouse_url)
    if expected is None:
        with pytest.raises(MappingConflict):
            dest.load(table, spec.mapping.batches([batch]), "replace")
        event("refused by the load")
        return
    event("loaded" if spec.mapping else "loaded without a mapping")
    dest.load(table, spec.mapping.batches([batch]), "replace")
    # A column is created once it has a type: a value, or a declared `type:`.
    declared = {column_name(c) for c in spec.type_hints().columns if c in columns}
    typed_columns = {c for c, vals in expected.items() if c in declared or any(v is not None for v in vals)}
    if not typed_columns:
        return  # every value NULL and nothing declared: nothing is created
    with dest.engine.connect() as conn:
        got = conn.execute(sa.select(sa.table(table, *map(sa.column, sorted(typed_columns))))).all()
    assert sorted(got, key=repr) == sorted(zip(*(expected[c] for c in sorted(typed_columns)), strict=True), key=repr)
    assert set(_columns(warehouse_url, table)) == typed_columns


def test_excluding_a_flattened_object_drops_all_of_its_columns() -> None:
    """Found in review: with nested data unpacked, `exclude: true` on an object (`address`, the name users see at
    the source) matched no column, and `address__city` and `address__zip` reached the table."""
    batch = TypeTracker().from_records([{"id": 1, "address": {"city": "Berlin", "zip": "10115"}, "addressee": "x"}])
    flattened = Batch(columns=("id", "address__city", "address__zip", "addressee"),
                      types={"id": ColumnType.INTEGER, "address__city": ColumnType.TEXT,
                             "address__zip": ColumnType.TEXT, "addressee": ColumnType.TEXT},
                      rows=[(1, "Berlin", "10115", "x")])
    mapping = ColumnMapping(excluded=frozenset({"address"}))
    assert mapping.batch(flattened).columns == ("id", "addressee")
    assert mapping.columns({"id": 1, "address__city": 2, "addressee": 3}) == {"id": 1, "addressee": 3}
    # Unpacking off: `address` is one JSON text column, and only it goes.
    assert "address" in batch.columns and mapping.batch(batch).columns == ("id", "addressee")


NAMES = st.sampled_from(["a", "b", "a__x", "a__y", "b__x", "ab", "c"])


@given(columns=st.sets(NAMES, min_size=1), excluded=st.sets(st.sampled_from(["a", "b", "a__x", "c", "z"])))
def test_what_an_exclusion_drops(columns: set[str], excluded: set[str]) -> None:
    """A column goes when it is excluded, or when an excluded name is no column but the object it came from
    (`name__…`); every other column stays."""
    dropped = ColumnMapping(excluded=frozenset(excluded)).dropped(columns)
    for column in columns:
        objects = [ex for ex in excluded if ex not in columns and column.startswith(ex + "__")]
        assert (column in dropped) == (column in excluded or bool(objects)), (column, dropped)
