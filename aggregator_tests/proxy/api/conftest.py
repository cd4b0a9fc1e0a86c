"""A real dagster-webserver reading a specs directory of its own, behind the real proxy with the API on.

The specs directory is a copy of the bundled samples in a temporary directory: the API writes into it, and
the webserver's code location (reloaded by the API) reads it, exactly as in a deployment.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from aggregator.proxy.api.live_events import EventHub
from aggregator.proxy.api.slots import Slots
from aggregator.proxy.api.state import ApiLimits
from aggregator.proxy.app import ProxyApp
from aggregator.proxy.config import load_proxy_settings
from aggregator.proxy.graphql_ops import GraphQLInspector, dagster_schema
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import DrainingServer, open_store
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator.worker.launch import TOKEN_ENV, URL_ENV, new_token, start_worker, worker_env
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import (
    INSTANCE_YAML,
    PASSWORD,
    RunningProxy,
    free_port,
    stop_process,
    wait_http,
    wait_location_loaded,
)

# Who the tests act as: the four roles unscoped, an editor and a viewer limited to one pipeline each.
GRANTS: dict[str, tuple[Role, list[str] | None]] = {
    "admin": (Role.admin, None), "editor": (Role.editor, None), "launcher": (Role.launcher, None),
    "viewer": (Role.viewer, None), "sales_editor": (Role.editor, ["sales"]), "shop_viewer": (Role.viewer, ["shop"]),
}


@dataclass
class ApiStack:
    upstream_url: str
    proxy: RunningProxy
    specs_dir: Path
    warehouse: Path
    home: Path
    worker_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.proxy.url

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def upstream_assets(self) -> set[str]:
        """Asset keys the webserver's code location holds now (straight from Dagster, not via the proxy)."""
        body = httpx.post(f"{self.upstream_url}/graphql", timeout=60, json={
            "query": "{ assetNodes { assetKey { path } } }"}).json()
        return {"/".join(n["assetKey"]["path"]) for n in body["data"]["assetNodes"]}


@contextmanager
def event_budgets(stack: ApiStack, **limits: Any) -> Iterator[EventHub]:
    """The proxy's live-event hub with other budgets (and slots sized to them) for a while; the old ones after."""
    hub = stack.proxy.app.api.events
    saved = hub.limits, hub.slots
    hub.limits = ApiLimits(**limits)
    hub.slots = Slots(hub.limits.events_total, hub.limits.events_per_user)
    try:
        yield hub
    finally:
        hub.limits, hub.slots = saved


def start_api_webserver(home: Path, specs: Path, warehouse_url: str) -> tuple[str, subprocess.Popen[bytes]]:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = pipelines_env(home, specs, warehouse_url)
    port = free_port()
    with open(home / "webserver.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m", "aggregator.definitions",
                                 "-h", "127.0.0.1", "-p", str(port)], env=env, cwd=home, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/server_info", proc)
        wait_location_loaded(f"{url}/graphql", home / "webserver.log")
    except BaseException:
        stop_process(proc)
        raise
    return url, proc


def pipelines_env(home: Path, specs: Path, warehouse_url: str) -> dict[str, str]:
    """What run workers get: none of the platform's (or this test process's) AGGREGATOR_/DAGSTER_ settings
    but the suite's egress grants (process_env.py)."""
    return platform_env(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
                        AGGREGATOR_PIPELINES=str(specs), AGGREGATOR_WAREHOUSE_URL=warehouse_url)


def start_api_worker(home: Path, env: dict[str, str], services: list[str], databases: list[str],
                     **extra: str) -> tuple[str, str, subprocess.Popen[bytes]]:
    """A real `aggregator worker` with the pipelines' environment; the suite's loopback API servers and
    temporary files are allowed explicitly (conftest `egress_for_tests`), the platform's own services not."""
    token = new_token()
    env = worker_env(env, token, services, databases)
    env.update(extra)
    port = free_port()
    with open(home / "worker.log", "ab") as log:
        proc = start_worker(env, home, port, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc)
    except BaseException:
        stop_process(proc)
        raise
    return url, token, proc


def start_api_proxy(upstream_url: str, db_url: str, platform: Settings,
                    worker: tuple[str, str] | None = None) -> RunningProxy:
    settings = load_proxy_settings(upstream_url, Path("/nonexistent"), "", environ={"AGGREGATOR_PROXY_DB_URL": db_url})
    store, audit = open_store(settings.db_url)
    with pytest.MonkeyPatch.context() as patch:  # the API reads where its worker is when it is built
        patch.delenv(URL_ENV, raising=False)
        patch.delenv(TOKEN_ENV, raising=False)
        if worker is not None:
            patch.setenv(URL_ENV, worker[0])
            patch.setenv(TOKEN_ENV, worker[1])
        app = ProxyApp(settings, store, audit, GraphQLInspector(dagster_schema()), platform=platform)
    port = free_port()
    server = DrainingServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                           ws="websockets-sansio", server_header=False, date_header=False), app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    running = RunningProxy(f"http://127.0.0.1:{port}", settings, store, audit, app, server, thread)
    try:
        wait_http(f"{running.url}/server_info", timeout_s=60)
    except BaseException:
        running.stop()
        raise
    return running


def fill_warehouse(path: Path) -> None:
    """Tables as the sample pipelines land them (names `<pipeline>_<asset>`), plus one no pipeline owns."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales_orders (order_id INTEGER, region TEXT, quantity INTEGER, unit_price REAL)")
        conn.executemany("INSERT INTO sales_orders VALUES (?, ?, ?, ?)",
                         [(i, ["north", "south", "east", "west"][i % 4], i % 7, 1.5 * i) for i in range(1, 2001)])
        conn.execute("CREATE TABLE shop_customers (id INTEGER, name TEXT)")
        conn.executemany("INSERT INTO shop_customers VALUES (?, ?)", [(1, "Ada"), (2, "Grace")])
        conn.execute("CREATE TABLE secrets (token TEXT)")
        conn.execute("INSERT INTO secrets VALUES ('do-not-read')")


@pytest.fixture(scope="session")
def api_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    home = tmp_path_factory.mktemp("api-home")
    specs = home / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    warehouse = home / "warehouse.db"
    fill_warehouse(warehouse)
    platform = Settings(home=home, pipelines_dir=specs, warehouse_url=f"sqlite:///{warehouse}")
    upstream_url, proc = start_api_webserver(home, specs, platform.warehouse_url)
    worker: subprocess.Popen[bytes] | None = None
    try:
        proxy_db = f"sqlite:///{home / 'proxy.db'}"
        worker_url, token, worker = start_api_worker(
            home, pipelines_env(home, specs, platform.warehouse_url), [upstream_url.removeprefix("http://")],
            [proxy_db])
        proxy = start_api_proxy(upstream_url, proxy_db, platform, (worker_url, token))
        try:
            stack = ApiStack(upstream_url, proxy, specs, warehouse, home, worker_url)
            proxy.app.ops.dagster_home = str(home / "dagster")  # /api/logs reads the webserver's instance
            for user, (role, scope) in GRANTS.items():
                proxy.store.add_user(user, PASSWORD, role, scope=scope)
                stack.tokens[user], _ = proxy.store.create_token(user)
            yield stack
        finally:
            proxy.stop()
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(proc)
