"""`/api/saved-queries` and `/api/dashboards` through the real proxy: own rows only, the guard at save and at run."""

from __future__ import annotations

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.api.conftest import ApiStack

SALES = "SELECT region, SUM(quantity) AS quantity FROM sales_orders GROUP BY region ORDER BY region"


@pytest.fixture
def saver(api_stack: ApiStack) -> str:
    """A viewer of its own with a token, without saved queries or dashboards."""
    store = api_stack.proxy.store
    if store.get_user("saver") is None:
        store.add_user("saver", "x" * 16, Role.viewer, scope=None)
        api_stack.tokens["saver"], _ = store.create_token("saver")
    with api_stack.client("saver") as c:
        for board in c.get("/api/dashboards").json():
            c.delete(f"/api/dashboards/{board['id']}")
        for query in c.get("/api/saved-queries").json():
            c.delete(f"/api/saved-queries/{query['id']}")
    return "saver"


def test_save_list_change_and_delete(api_stack: ApiStack, saver: str) -> None:
    with api_stack.client(saver) as c:
        r = c.post("/api/saved-queries", json={"name": "by region", "sql": SALES, "row_limit": 50,
                                               "chart": {"kind": "bar", "x": "region", "ys": ["quantity"]}})
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["sql"] == SALES and saved["chart"]["kind"] == "bar"
        assert [q["name"] for q in c.get("/api/saved-queries").json()] == ["by region"]
        board = c.post("/api/dashboards", json={"name": "sales", "items": [
            {"query_id": saved["id"], "chart": {"kind": "line", "x": "region", "ys": ["quantity"]}}]})
        assert board.status_code == 200, board.text
        assert c.delete(f"/api/saved-queries/{saved['id']}").status_code == 409  # the dashboard shows it
        changed = c.put(f"/api/saved-queries/{saved['id']}", json={**saved, "name": "regions", "id": None})
        assert changed.status_code == 400  # the body is a SavedQueryIn: no id, no timestamps
        fields = {k: saved[k] for k in ("sql", "row_limit", "chart")}
        changed = c.put(f"/api/saved-queries/{saved['id']}", json={**fields, "name": "regions"})
        assert changed.status_code == 200 and changed.json()["name"] == "regions"
        assert c.delete(f"/api/dashboards/{board.json()['id']}").json() == []
        assert c.delete(f"/api/saved-queries/{saved['id']}").json() == []


def test_nobody_else_sees_them_not_even_an_admin(api_stack: ApiStack, saver: str) -> None:
    with api_stack.client(saver) as c:
        saved = c.post("/api/saved-queries", json={"name": "mine", "sql": SALES}).json()
        board = c.post("/api/dashboards", json={"name": "mine", "items": [{"query_id": saved["id"]}]}).json()
    for who in ("admin", "viewer", "sales_editor"):
        with api_stack.client(who) as c:
            assert saved["id"] not in {q["id"] for q in c.get("/api/saved-queries").json()}
            for path in (f"/api/saved-queries/{saved['id']}", f"/api/dashboards/{board['id']}"):
                assert c.get(path).status_code == 404
                assert c.delete(path).status_code == 404
            r = c.put(f"/api/saved-queries/{saved['id']}", json={"name": "taken over", "sql": "SELECT 1 AS one"})
            assert r.status_code == 404, r.text
            r = c.post("/api/dashboards", json={"name": "borrowed", "items": [{"query_id": saved["id"]}]})
            assert r.status_code == 404 and saved["id"] in r.json()["detail"]
    with api_stack.client(None) as c:
        assert c.get("/api/saved-queries").status_code == 401


def test_a_saved_query_runs_under_the_grant_of_now(api_stack: ApiStack, saver: str) -> None:
    """Saved under a grant covering `sales`; the same user with a grant limited to `shop` (a narrower token)
    reads it, but running it is refused, and saving it again too. Nothing of the saver's grant is kept."""
    with api_stack.client(saver) as c:
        saved = c.post("/api/saved-queries", json={"name": "sales", "sql": SALES}).json()
        assert c.post("/api/query", json={"sql": saved["sql"]}).status_code == 200
    narrow, _ = api_stack.proxy.store.create_token(saver, scope=["shop"])
    with httpx.Client(base_url=api_stack.url, headers={"Authorization": f"Bearer {narrow}"}, timeout=60) as c:
        assert c.get(f"/api/saved-queries/{saved['id']}").json()["sql"] == SALES  # still theirs to read
        run = c.post("/api/query", json={"sql": saved["sql"]})
        assert run.status_code == 403 and "sales_orders" in run.json()["missing_permission"]
        again = c.post("/api/saved-queries", json={"name": "sales again", "sql": SALES})
        assert again.status_code == 403 and "sales_orders" in again.json()["detail"]


@pytest.mark.parametrize(("path", "body", "says"), [
    ("/api/saved-queries", {"name": "x" * 201, "sql": "SELECT 1"}, "name"),
    ("/api/saved-queries", {"name": " padded", "sql": "SELECT 1"}, "name"),
    ("/api/saved-queries", {"name": "big", "sql": "SELECT 1 " + " " * 100_000}, "sql"),
    ("/api/saved-queries", {"name": "rows", "sql": "SELECT 1", "row_limit": 100_001}, "row_limit"),
    ("/api/saved-queries", {"name": "w", "sql": "DELETE FROM sales_orders"}, "only SELECT"),
    ("/api/saved-queries", {"name": "c", "sql": "SELECT 1", "chart": {"kind": "pie"}}, "chart.kind"),
    ("/api/dashboards", {"name": "many", "items": [{"query_id": "0" * 16}] * 25}, "items"),
    ("/api/dashboards", {"name": "id", "items": [{"query_id": "../x"}]}, "query_id"),
])
def test_bad_bodies_are_400_naming_the_field(api_stack: ApiStack, saver: str, path: str, body: dict[str, object],
                                             says: str) -> None:
    with api_stack.client(saver) as c:
        r = c.post(path, json=body)
    assert r.status_code == 400 and says in r.json()["detail"], r.text
