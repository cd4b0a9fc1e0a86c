"""Saved queries and dashboards in the platform database, on SQLite and PostgreSQL: per user, budgeted."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from aggregator.proxy.storage.saved import SavedError, SavedStore

CHART = {"kind": "bar", "x": "region", "ys": ["revenue"]}


def test_each_user_sees_and_changes_only_their_own(engine: Engine) -> None:
    store = SavedStore(engine)
    mine = store.create_query("ada", "revenue", "SELECT 1", 10, CHART)
    store.create_query("grace", "revenue", "SELECT 2", 10, None)  # the same name for another user is fine
    assert [q.sql for q in store.list_queries("ada")] == ["SELECT 1"]
    assert store.get_query("ada", mine.id).chart == CHART
    for attempt in (lambda: store.get_query("grace", mine.id),
                    lambda: store.update_query("grace", mine.id, "x", "SELECT 3", 1, None),
                    lambda: store.delete_query("grace", mine.id),
                    lambda: store.create_dashboard("grace", "d", [{"query_id": mine.id, "chart": None}])):
        with pytest.raises(SavedError) as refused:
            attempt()
        assert refused.value.status == 404
    assert store.get_query("ada", mine.id).sql == "SELECT 1"
    assert store.list_dashboards("grace") == []


def test_names_are_unique_per_user_and_a_shown_query_is_not_deleted(engine: Engine) -> None:
    store = SavedStore(engine)
    first = store.create_query("ada", "a", "SELECT 1", 10, None)
    second = store.create_query("ada", "b", "SELECT 2", 10, None)
    with pytest.raises(SavedError, match="already have one named 'a'") as taken:
        store.update_query("ada", second.id, "a", "SELECT 2", 10, None)
    assert taken.value.status == 409
    board = store.create_dashboard("ada", "board", [{"query_id": first.id, "chart": CHART}])
    with pytest.raises(SavedError, match="on dashboard\\(s\\) board") as used:
        store.delete_query("ada", first.id)
    assert used.value.status == 409
    store.update_dashboard("ada", board.id, "board", [{"query_id": second.id, "chart": None}])
    store.delete_query("ada", first.id)
    assert [q.name for q in store.list_queries("ada")] == ["b"]
    assert store.get_dashboard("ada", board.id).items == [{"query_id": second.id, "chart": None}]


def test_count_budgets_per_user(engine: Engine) -> None:
    store = SavedStore(engine, max_queries=2, max_dashboards=1)
    for n in range(2):
        store.create_query("ada", f"q{n}", "SELECT 1", 10, None)
    with pytest.raises(SavedError, match="you have 2 saved queries, the most") as over:
        store.create_query("ada", "q2", "SELECT 1", 10, None)
    assert over.value.status == 422
    store.create_query("grace", "q", "SELECT 1", 10, None)  # another user's budget is their own
    store.create_dashboard("ada", "d", [])
    with pytest.raises(SavedError, match="1 dashboards"):
        store.create_dashboard("ada", "e", [])
