"""The API below Dagster's --path-prefix: routes and the OpenAPI document follow the prefix.

The real proxy app in-process (httpx's ASGI transport), real SQLite stores; these endpoints never reach
the webserver, so none runs here."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import httpx

from aggregator.proxy.app import ProxyApp
from aggregator.proxy.config import load_proxy_settings
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings


def test_api_below_a_path_prefix(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    with sqlite3.connect(tmp_path / "w.db") as conn:
        conn.execute("CREATE TABLE sales_orders (order_id INTEGER)")
    settings = load_proxy_settings("http://127.0.0.1:9", tmp_path, "/dagster",
                                   environ={"AGGREGATOR_PROXY_DB_URL": f"sqlite:///{tmp_path / 'p.db'}"})
    store, audit = open_store(settings.db_url)
    store.add_user("ana", None, Role.viewer)
    token, _ = store.create_token("ana")
    app = ProxyApp(settings, store, audit, platform=Settings(home=tmp_path, pipelines_dir=specs,
                                                              warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"))

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
            headers = {"Authorization": f"Bearer {token}"}
            return (await client.get("/dagster/api/tables", headers=headers),
                    await client.get("/dagster/api/openapi.json"),
                    await client.get("/api/tables", headers=headers))

    try:
        tables, doc, outside = asyncio.run(run())
    finally:
        app.services.close()
    assert tables.status_code == 200 and {"pipeline": "sales", "asset": "orders", "table": "sales_orders"} in tables.json()
    assert all(path.startswith("/dagster/") for path in doc.json()["paths"])
    assert "/dagster/api/tables" in doc.json()["paths"]
    assert outside.status_code != 200  # without the prefix it is not the API
