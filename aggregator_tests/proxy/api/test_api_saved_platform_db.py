"""Saved queries and dashboards through the real proxy on each platform database: SQLite (dev) and PostgreSQL
(deployments), two proxy replicas on one database seeing the same rows. No Dagster is needed: a small
upstream answers the proxy's start-up probe."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from aggregator.proxy.policy.rbac import Role
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator_tests.proxy.api.conftest import fill_warehouse, start_api_proxy
from aggregator_tests.proxy.conftest import PASSWORD


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_two_replicas_share_saved_queries_and_dashboards(engine: Engine, upstream: str, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    fill_warehouse(tmp_path / "warehouse.db")
    platform = Settings(home=tmp_path, pipelines_dir=specs, warehouse_url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    url = engine.url.render_as_string(hide_password=False)
    replicas = [start_api_proxy(upstream, url, platform) for _ in range(2)]
    try:
        store = replicas[0].store
        tokens = {}
        for user in ("ada", "grace"):
            store.add_user(user, PASSWORD, Role.viewer)
            tokens[user], _ = store.create_token(user)

        def client(replica: int, user: str) -> httpx.Client:
            return httpx.Client(base_url=replicas[replica].url, headers={"Authorization": f"Bearer {tokens[user]}"},
                                timeout=60)

        with client(0, "ada") as c:
            saved = c.post("/api/saved-queries", json={"name": "orders", "sql": "SELECT COUNT(*) AS n FROM sales_orders",
                                                       "chart": {"kind": "table"}})
            assert saved.status_code == 200, saved.text
            board = c.post("/api/dashboards", json={"name": "b", "items": [{"query_id": saved.json()["id"]}]})
            assert board.status_code == 200, board.text
        with client(1, "ada") as c:
            assert [q["name"] for q in c.get("/api/saved-queries").json()] == ["orders"]
            assert c.get(f"/api/dashboards/{board.json()['id']}").json()["items"][0]["query_id"] == saved.json()["id"]
            assert c.post("/api/saved-queries", json={"name": "orders", "sql": "SELECT 1 AS one"}).status_code == 409
        with client(1, "grace") as c:
            assert c.get("/api/saved-queries").json() == []
            assert c.get(f"/api/saved-queries/{saved.json()['id']}").status_code == 404
    finally:
        for replica in replicas:
            replica.stop()
