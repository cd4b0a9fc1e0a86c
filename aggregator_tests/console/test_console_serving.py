"""The proxy serves the shipped Console under /console/: behind sign-in, SPA fallback, cache and CSP headers.

The real proxy app in-process (httpx's ASGI transport) with real SQLite stores; nothing here reaches Dagster.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.app import ProxyApp
from aggregator.proxy.config import load_proxy_settings
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.routes.console import BASE_HREF, CONSOLE_DIST, IMMUTABLE
from aggregator.proxy.server import open_store
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from scripts.console_fixtures import FIXTURE, SPECS_FIXTURE, connector_types_json, example_specs_json

INITIAL_JS_BUDGET = 500 * 1024  # gzipped bytes of the JavaScript the first page loads (issue 21)


@dataclass
class Stack:
    app: ProxyApp
    token: str
    viewer_token: str

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
                return await client.get(path, headers=headers or {})

        return asyncio.run(run())


def _stack(tmp_path: Path, prefix: str = "") -> Stack:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    settings = load_proxy_settings("http://127.0.0.1:9", tmp_path, prefix,
                                   environ={"AGGREGATOR_PROXY_DB_URL": f"sqlite:///{tmp_path / 'p.db'}"})
    store, audit = open_store(settings.db_url)
    store.add_user("ana", None, Role.editor, scope=["sales"])
    store.add_user("vic", None, Role.viewer)
    token, _ = store.create_token("ana")
    viewer, _ = store.create_token("vic")
    app = ProxyApp(settings, store, audit, platform=Settings(home=tmp_path, pipelines_dir=specs,
                                                              warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"))
    return Stack(app, token, viewer)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = _stack(tmp_path)
    yield s
    s.app.services.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_browser_without_a_session_goes_to_sign_in_and_back(stack: Stack) -> None:
    page = stack.get("/console/connections/new", {"accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/_auth/login?next=/console/connections/new"
    assert stack.get("/console/assets/anything.js").status_code == 401  # assets are behind sign-in too


def test_every_page_path_answers_the_app_with_the_console_policy(stack: Stack) -> None:
    for path in ("/console/", "/console/overview", "/console/connections/shop_db", "/console/no/such/page"):
        page = stack.get(path, _bearer(stack.token))
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'self'" in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert '<base href="/console/" />' in page.text
    # Other pages keep the proxy's usual (frame-ancestors only) policy.
    assert stack.get("/_auth/login").headers["content-security-policy"] == "frame-ancestors 'none'"
    redirect = stack.get("/console", _bearer(stack.token))
    assert redirect.status_code == 308 and redirect.headers["location"] == "/console/"


def test_hashed_assets_are_immutable_and_unknown_ones_are_404(stack: Stack) -> None:
    index = stack.get("/console/", _bearer(stack.token)).text
    scripts = re.findall(r'src="\./(assets/[^"]+\.js)"', index)
    assert scripts, index
    asset = stack.get(f"/console/{scripts[0]}", _bearer(stack.token))
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == IMMUTABLE
    assert "javascript" in asset.headers["content-type"]
    missing = stack.get("/console/assets/not-a-build-file.js", _bearer(stack.token))
    assert missing.status_code == 404 and "not-a-build-file" in missing.json()["detail"]


def test_below_a_path_prefix_the_base_follows_it(tmp_path: Path) -> None:
    s = _stack(tmp_path, "/dagster")
    try:
        page = s.get("/dagster/console/logs", _bearer(s.token))
        assert page.status_code == 200
        assert '<base href="/dagster/console/" />' in page.text
        assert BASE_HREF not in page.text
    finally:
        s.app.services.close()


def test_me_says_what_the_caller_may_do_and_why_not(stack: Stack) -> None:
    """The Console shows only allowed actions: /_auth/me derives them from the route table."""
    scoped = stack.get("/_auth/me", _bearer(stack.token)).json()
    create = scoped["abilities"]["create_connection"]
    assert create["allowed"] is False and "unscoped editor" in create["reason"] and "sales" in create["reason"]
    assert scoped["abilities"]["check_connection"] == {"allowed": True, "reason": None}
    viewer = stack.get("/_auth/me", _bearer(stack.viewer_token)).json()
    assert viewer["abilities"]["run_query"]["allowed"] is True
    check = viewer["abilities"]["check_connection"]
    assert check["allowed"] is False and check["reason"] == "needs role editor; vic has viewer"
    assert viewer["abilities"]["read_audit"]["allowed"] is False
    # What /_auth/me says is what the API does.
    refused = stack.get("/_auth/api/audit", _bearer(stack.viewer_token))
    assert refused.status_code == 403


def test_alert_history_is_fenced_to_a_scoped_grants_pipelines(stack: Stack, tmp_path: Path) -> None:
    from aggregator.alerts.history import AlertStore, alerts_db_url

    alerts = AlertStore(alerts_db_url(tmp_path))
    try:
        alerts.record(status="sent", kind="run_failure", subject="run:sales", title="sales failed", pipeline="sales",
                      run_id="r1", channel="ops")
        alerts.record(status="sent", kind="run_failure", subject="run:shop", title="shop failed", pipeline="shop")
        alerts.record(status="held", kind="platform", subject="spec_errors", title="specs broken")
    finally:
        alerts.dispose()
    everything = stack.get("/api/alerts/history", _bearer(stack.viewer_token)).json()
    assert [a["title"] for a in everything] == ["specs broken", "shop failed", "sales failed"]
    scoped = stack.get("/api/alerts/history", _bearer(stack.token)).json()  # ana: editor of sales only
    assert [(a["title"], a["run_id"]) for a in scoped] == [("sales failed", "r1")]
    outside = stack.get("/api/alerts/history?pipeline=shop", _bearer(stack.token))
    assert outside.status_code == 403 and outside.json()["missing_permission"] == "viewer:alert_history on shop"
    held = stack.get("/api/alerts/history?status=held", _bearer(stack.viewer_token)).json()
    assert [a["kind"] for a in held] == ["platform"]


def test_shipped_build_is_complete_and_its_initial_javascript_is_under_budget() -> None:
    """What the first page loads (the entry script and its modulepreloads), gzipped, stays under 500 KB; every
    page is its own chunk, loaded when visited."""
    index = (CONSOLE_DIST / "index.html").read_text(encoding="utf-8")
    assert BASE_HREF in index
    initial = re.findall(r'(?:src|href)="\./(assets/[^"]+\.js)"', index)
    assert len(initial) >= 1
    sizes = {name: len(gzip.compress((CONSOLE_DIST / name).read_bytes(), 9)) for name in initial}
    total = sum(sizes.values())
    assert total < INITIAL_JS_BUDGET, sizes
    chunks = {p.name.split("-")[0] for p in (CONSOLE_DIST / "assets").glob("*.js")}
    for page in ("Overview", "Connections", "ConnectionEdit", "Logs", "Analytics", "Uploads", "Alerts",
                 "Administration", "Builder"):
        assert page in chunks, f"page {page} is not a chunk of its own: {sorted(chunks)}"
    for page in chunks & {"Overview", "Analytics", "ConnectionEdit"}:
        assert not any(name.startswith(f"assets/{page}-") for name in initial), "a page is in the initial load"


def test_connector_type_fixture_is_current() -> None:
    """The form tests render every connector type from this file: it must be what the API serves now."""
    assert FIXTURE.read_text(encoding="utf-8") == connector_types_json(), (
        "aggregator/console/src/test/connector-types.json is stale: run `python scripts/console_fixtures.py`")


def test_example_specs_fixture_is_current() -> None:
    """The builder's round-trip tests run over every sample spec from this file: it must hold them as they are."""
    assert SPECS_FIXTURE.read_text(encoding="utf-8") == example_specs_json(), (
        "aggregator/console/src/test/example-specs.json is stale: run `python scripts/console_fixtures.py`")
