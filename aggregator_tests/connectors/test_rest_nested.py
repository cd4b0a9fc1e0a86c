"""Nested REST records against the real test API on 127.0.0.1: loaded into parent + child tables and rebuilt
exactly; discovery reports exactly the tables, columns and types the load creates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.schema import column_name
from aggregator.destinations.sql import SqlDestination
from aggregator.proxy.api.schema_routes import load_diff
from aggregator_tests.nested_docs import rebuild
from aggregator_tests.testapi import LocalApi
from connectors.batches import ColumnType
from connectors.files.config import FileStream
from connectors.files.resource import FilesResource
from connectors.rest.config import RestStream
from connectors.rest.resource import RestApiResource
from connectors.sql.types import portable_type
from connectors.type_hints import TypeHints


def users(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "score": i * 2, "profile": {"name": f"u{i}", "geo": {"lat": i / 4, "lon": -i / 8}},
             "emails": [{"address": f"u{i}@x.org", "verified": i % 2 == 0}] * (i % 3 + 1),
             "roles": ["admin", "dev"][: i % 2 + 1], "joined": f"2024-03-{i % 28 + 1:02d}"}
            for i in range(1, 13)]


@pytest.fixture
def dest(warehouse_url: str) -> SqlDestination:
    return SqlDestination(url=warehouse_url)


def stream(**nested: Any) -> RestStream:
    return RestStream.model_validate({"path": "items/offset", "records_path": "items",
                                      "pagination": {"type": "offset", "limit": 5}, "batch_size": 4,
                                      "nested": nested})


def canonical(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in docs)


def tables(dest: SqlDestination, table: str) -> dict[str, dict[str, str]]:
    inspector = sa.inspect(dest.engine)
    return {t: {c["name"]: portable_type(c["type"]).value for c in inspector.get_columns(t)}
            for t in inspector.get_table_names() if t == table or t.startswith(f"{table}__")}


def test_rest_round_trip(api: LocalApi, dest: SqlDestination) -> None:
    docs = users(12)
    api.state.items = docs
    resource = RestApiResource(base_url=api.url)
    hints = TypeHints(detect_timestamps=False)
    result = dest.load("api_users", resource.read(stream(), hints=hints), "append")
    assert result.rows_written == 12 and set(result.child_tables) == {"api_users__emails", "api_users__roles"}
    with dest.engine.connect() as conn:
        assert canonical(rebuild(conn, "api_users")) == canonical(docs)


def test_discovery_is_what_the_load_creates(api: LocalApi, dest: SqlDestination) -> None:
    """Same tables, columns and types, with a declared type (`score: float` over integer values) and dates;
    so the schema comparison reports no drift."""
    api.state.items = users(12)
    resource = RestApiResource(base_url=api.url)
    hints = TypeHints(columns={"score": ColumnType.FLOAT})
    infos = resource.discover(stream(), hints)
    dest.load("api_users", resource.read(stream(), hints=hints), "append")
    discovered = {("api_users" if i.name == "items/offset" else f"api_users__{i.name.split('__', 1)[1]}"):
                  {column_name(c): t.value for c, t in i.columns.items()} for i in infos}
    assert discovered == tables(dest, "api_users")
    assert discovered["api_users"]["score"] == "float" and discovered["api_users"]["joined"] == "date"
    no_drift = load_diff(tables(dest, "api_users")["api_users"], discovered["api_users"])
    assert no_drift is not None and not (no_drift.added or no_drift.removed or no_drift.type_changed)


def test_schema_diff_reports_only_what_a_load_would_change() -> None:
    """An integer sample against a float column is no drift (a load writes integers into it unchanged); a text
    sample against an integer column is."""
    found = load_diff({"score": "float", "n": "integer", "at": "timestamp"},
                      {"score": "integer", "n": "text", "at": "date"})
    assert found is not None and found.type_changed == {"n": ["integer", "text"]}


def test_json_lines_files_nest_like_rest(tmp_path: Path, dest: SqlDestination, api: LocalApi) -> None:
    """The same records from a JSON Lines file and from the API give the same tables."""
    docs = users(12)
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "users.json").write_text(json.dumps({"data": docs}))
    files = FilesResource(base_dir=str(tmp_path))
    dest.load("f_users", files.read(FileStream.model_validate({"path": "users.jsonl", "nested": {}})), "append")
    dest.load("j_users", files.read(FileStream.model_validate(
        {"path": "users.json", "records_path": "data", "nested": {}})), "append")
    api.state.items = docs
    dest.load("r_users", RestApiResource(base_url=api.url).read(stream()), "append")

    def renamed(prefix: str) -> dict[str, dict[str, str]]:
        return {t.replace(prefix, "x", 1): c for t, c in tables(dest, prefix).items()}

    assert renamed("f_users") == renamed("r_users") == renamed("j_users")
    with dest.engine.connect() as conn:
        assert canonical([_dates_as_text(d) for d in rebuild(conn, "f_users")]) == canonical(docs)


def _dates_as_text(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "joined": doc["joined"].isoformat()}
