"""Every endpoint against the access layer: anonymous (401), viewer on writes, a scoped grant outside its
pipelines (403 naming the missing permission), and refusals in the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy.api.conftest import ApiStack
from aggregator_tests.proxy.api.test_api_templates import TEMPLATE


@pytest.fixture(autouse=True, scope="module")
def _template(api_stack: ApiStack) -> None:
    """The template the instantiate rows name, so a scoped editor's refusal is about scope, not a 404."""
    (api_stack.specs_dir / "api_templates.yaml").write_text(TEMPLATE)

SPEC = "pipelines:\n  - name: {name}\n    sources: []\n"

# (method, path, json body, who may NOT do it beyond anonymous, a caller it is allowed for)
# `sales_editor` edits only `sales`; `shop_viewer` reads data of `shop` only.
CASES: list[tuple[str, str, dict[str, Any] | None, list[str], str]] = [
    ("GET", "/api/pipelines", None, [], "viewer"),
    ("GET", "/api/pipelines/sales", None, [], "shop_viewer"),
    ("GET", "/api/pipelines/sales/versions", None, [], "viewer"),
    ("POST", "/api/pipelines", {"name": "shop_new", "yaml": SPEC.format(name="shop_new")},
     ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/pipelines/validate", {"name": "x", "yaml": SPEC.format(name="x")}, [], "viewer"),
    ("PUT", "/api/pipelines/shop", {"yaml": SPEC.format(name="shop")}, ["viewer", "launcher", "sales_editor"],
     "editor"),
    ("DELETE", "/api/pipelines/shop", None, ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/pipelines/shop/versions/1/rollback", None, ["viewer", "launcher"], "editor"),
    ("GET", "/api/tables", None, [], "viewer"),
    ("GET", "/api/pipelines/shop/sources/customers/schema", None, [], "shop_viewer"),
    ("GET", "/api/pipelines/sales/sources/orders/schema", None, ["shop_viewer"], "viewer"),
    ("POST", "/api/pipelines/sales/sources/orders/preview", {"limit": 3}, ["shop_viewer"], "viewer"),
    ("POST", "/api/pipelines/sales/transforms/daily_sales/preview", {"limit": 3}, ["shop_viewer"], "viewer"),
    ("POST", "/api/query", {"sql": "SELECT * FROM sales_orders"}, ["shop_viewer"], "viewer"),
    ("GET", "/api/assets/sales/orders/export", None, ["shop_viewer"], "viewer"),
    ("GET", "/api/connector-types", None, [], "viewer"),
    ("GET", "/api/templates", None, [], "viewer"),
    ("POST", "/api/templates/api_region/instantiate", {"params": {"region": "eu"}},
     ["viewer", "launcher", "sales_editor"], "editor"),
    ("GET", "/api/uploads/shop/x.csv", None, ["viewer", "sales_editor"], "launcher"),
    ("PUT", "/api/uploads/shop/x.csv", None, ["viewer", "sales_editor"], "launcher"),
    ("DELETE", "/api/uploads/shop/x.csv", None, ["viewer", "sales_editor"], "launcher"),
    ("GET", "/api/connections", None, [], "viewer"),
    ("POST", "/api/connections", {"name": "new_conn", "type": "files", "config": {"base_dir": "data"}},
     ["viewer", "launcher", "sales_editor"], "editor"),
    ("GET", "/api/connections/shop_db", None, [], "viewer"),
    ("PUT", "/api/connections/shop_db", {"type": "sql", "config": {"url": "sqlite:///x.db"}},
     ["viewer", "launcher", "sales_editor"], "editor"),
    ("DELETE", "/api/connections/shop_db", None, ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/connections/shop_db/check", None, ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/connections/shop_db/discover", {}, ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/pipelines/shop/trigger", {"run_config": {"resources": {}}}, ["viewer", "sales_editor"], "launcher"),
    ("GET", "/api/logs", None, ["shop_viewer"], "viewer"),
    ("GET", "/api/events?topics=runs,logs&pipeline=sales", None, ["shop_viewer"], "viewer"),
    ("GET", "/api/alerts/history", None, [], "shop_viewer"),  # a scoped grant gets its pipelines' rows
    ("GET", "/api/alerts/config", None, [], "shop_viewer"),
    ("GET", "/api/alerts/config/versions", None, [], "shop_viewer"),
    # Channels and default rules are every pipeline's: writing or testing them needs an unscoped editor.
    ("PUT", "/api/alerts/config", {"alerts": {}}, ["viewer", "launcher", "sales_editor"], "editor"),
    ("POST", "/api/alerts/channels/hook/test", None, ["viewer", "launcher", "sales_editor"], "editor"),
    # Saved queries and dashboards: every signed-in role keeps its own; another's (or none) is 404, never 403.
    ("GET", "/api/saved-queries", None, [], "shop_viewer"),
    ("POST", "/api/saved-queries", {"name": "q", "sql": "SELECT * FROM shop_orders"}, [], "shop_viewer"),
    ("GET", "/api/saved-queries/999999", None, [], "viewer"),
    ("PUT", "/api/saved-queries/999999", {"name": "q", "sql": "SELECT 1"}, [], "viewer"),
    ("DELETE", "/api/saved-queries/999999", None, [], "viewer"),
    ("GET", "/api/dashboards", None, [], "shop_viewer"),
    ("POST", "/api/dashboards", {"name": "d"}, [], "shop_viewer"),
    ("GET", "/api/dashboards/999999", None, [], "viewer"),
    ("PUT", "/api/dashboards/999999", {"name": "d"}, [], "viewer"),
    ("DELETE", "/api/dashboards/999999", None, [], "viewer"),
]
OWN_ITEMS = ("/api/saved-queries/", "/api/dashboards/")


def test_routes_match_cases(api_stack: ApiStack) -> None:
    """Each route of the running API has a row in CASES (by method and path shape)."""
    import re

    def shape(path: str) -> str:
        return re.sub(r"\{[a-z_]+\}", "*", path)

    covered = set()
    for method, path, *_ in CASES:
        for route in api_stack.proxy.app.api.routes:
            if route.method == method and route.pattern.match(path.split("?")[0]):
                covered.add((route.method, shape(route.path)))
    # The proxy's own routes outside /api/ and the public ones are in test_access_matrix.py.
    every = {(r.method, shape(r.path)) for r in api_stack.proxy.app.api.routes
             if r.path.startswith("/api/") and not r.public}
    assert every - covered == set(), sorted(every - covered)


@pytest.mark.parametrize(("method", "path", "body"), [(m, p, b) for m, p, b, _, _ in CASES])
def test_anonymous_gets_401(api_stack: ApiStack, method: str, path: str, body: dict[str, Any] | None) -> None:
    with api_stack.client(None) as c:
        r = c.request(method, path, json=body)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthenticated" and r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "body", "who"),
                         [(m, p, b, w) for m, p, b, denied, _ in CASES for w in denied])
def test_refused_with_missing_permission(api_stack: ApiStack, method: str, path: str,
                                         body: dict[str, Any] | None, who: str) -> None:
    with api_stack.client(who) as c:
        r = c.request(method, path, json=body, headers={"If-Match": "*"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden" and r.json()["missing_permission"], r.json()
    rows = api_stack.proxy.audit.query(AuditQuery(username=who, decision="deny", limit=200))
    assert any(row.operation and path.split("?")[0] in row.operation for row in rows)


@pytest.mark.parametrize(("method", "path", "body", "who"), [(m, p, b, w) for m, p, b, _, w in CASES
                                                             if m == "GET" or "validate" in p or "query" in p])
def test_allowed_reads(api_stack: ApiStack, method: str, path: str, body: dict[str, Any] | None, who: str) -> None:
    # Streamed: a live event stream never ends by itself, and the status is what this test is about.
    with api_stack.client(who) as c, c.stream(method, path, json=body) as r:
        if r.status_code != 200:
            r.read()
        # Past the access layer: 200, or (uploads to a pipeline without a sensor) the endpoint's own 409, or (an
        # item of one's own saved queries or dashboards that does not exist) 404.
        assert (r.status_code == 200 or (path.startswith("/api/uploads/") and r.status_code == 409)
                or (path.startswith(OWN_ITEMS) and r.status_code == 404)), r.text


def test_scoped_editor_writes_inside_its_pipeline(api_stack: ApiStack) -> None:
    """The positive side of the scope: `sales_editor` may validate and update `sales` (a no-op rewrite)."""
    with api_stack.client("sales_editor") as c:
        got = c.get("/api/pipelines/sales")
        r = c.put("/api/pipelines/sales", json={"yaml": got.json()["yaml"]}, headers={"If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text


def test_scoped_viewer_sees_only_its_tables(api_stack: ApiStack) -> None:
    with api_stack.client("shop_viewer") as c:
        tables = {t["table"] for t in c.get("/api/tables").json()}
    assert tables and all(t.startswith("shop_") for t in tables), tables


def test_session_cookie_write_from_another_site_is_refused(api_stack: ApiStack) -> None:
    """A write with a session cookie must come from the proxy's own origin (CSRF), like GraphQL mutations."""
    with api_stack.client(None) as c:
        login = c.post("/_auth/login", data={"username": "editor", "password": "correct horse battery staple"},
                       headers={"Origin": api_stack.url})
        assert login.status_code in (200, 303), login.text
        r = c.post("/api/pipelines", json={"name": "csrf_try", "yaml": SPEC.format(name="csrf_try")},
                   headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["missing_permission"] == "same-origin", r.text
