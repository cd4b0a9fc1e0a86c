"""Schema comparison of a source: discovered now vs the destination table vs the last materialization."""

from __future__ import annotations

from aggregator.proxy.api.schema_routes import diff, portable_name
from aggregator_tests.proxy.api.conftest import ApiStack


def test_source_vs_destination(api_stack: ApiStack) -> None:
    """The sample shop database has more customer columns than the hand-made warehouse table holds."""
    with api_stack.client("shop_viewer") as c:
        r = c.get("/api/pipelines/shop/sources/customers/schema")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source_error"] is None and body["source"]["id"] == "integer"
    assert body["destination"] == {"id": "integer", "name": "text"}
    assert body["last_materialization"] is None and body["destination_vs_last_materialization"] is None
    change = body["source_vs_destination"]
    assert "updated_at" in change["added"] and change["removed"] == [] and "id" not in change["added"]
    # No mapping in the sample: every source column lands under its own name.
    assert body["source_columns"] == body["source"]
    assert body["mapping"] == {c: c for c in body["source_columns"]}


def test_unknown_source_is_404(api_stack: ApiStack) -> None:
    with api_stack.client("viewer") as c:
        assert c.get("/api/pipelines/shop/sources/nothing/schema").status_code == 404
        assert c.get("/api/pipelines/shop/sources/revenue_by_country/schema").status_code == 404  # a transform


def test_diff_classes() -> None:
    d = diff({"a": "integer", "b": "text", "c": "float"}, {"a": "text", "c": "float", "d": "date"})
    assert d is not None
    assert (d.added, d.removed, d.type_changed) == (["d"], ["b"], {"a": ["integer", "text"]})
    assert [portable_name(t) for t in ("BIGINT", "DOUBLE PRECISION", "TIMESTAMP", "DATE", "VARCHAR", "BOOLEAN")] == [
        "integer", "float", "timestamp", "date", "text", "boolean"]


def test_preview_reads_first_rows_and_writes_nothing(api_stack: ApiStack) -> None:
    """Preview of the sales CSV: 5 rows and their inferred types; no warehouse table or state appears."""
    import sqlite3

    before = sqlite3.connect(api_stack.warehouse).execute("SELECT name FROM sqlite_master").fetchall()
    with api_stack.client("viewer") as c:
        r = c.post("/api/pipelines/sales/sources/orders/preview", json={"limit": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["rows"]) == 5 and body["truncated"] is True
    assert body["columns"]["order_id"] == "integer" and "region" in body["columns"]
    assert sqlite3.connect(api_stack.warehouse).execute("SELECT name FROM sqlite_master").fetchall() == before


def test_transform_preview_over_sample_rows(api_stack: ApiStack) -> None:
    """`daily_sales` (SQL over `orders`) runs over the first 50 previewed order lines, in a scratch database."""
    import sqlite3

    before = sqlite3.connect(api_stack.warehouse).execute("SELECT name FROM sqlite_master").fetchall()
    with api_stack.client("viewer") as c:
        r = c.post("/api/pipelines/sales/transforms/daily_sales/preview", json={"source_rows": 50, "limit": 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body["columns"]) == ["day", "region", "orders", "units", "revenue"]
    assert sum(row[2] for row in body["rows"]) == 50  # every previewed order line counted once
    assert sqlite3.connect(api_stack.warehouse).execute("SELECT name FROM sqlite_master").fetchall() == before
