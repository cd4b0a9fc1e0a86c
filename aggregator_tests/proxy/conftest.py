"""A real dagster-webserver behind the real proxy, started once per session."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine

from aggregator.proxy.app import ProxyApp
from aggregator.proxy.config import ProxySettings, load_proxy_settings
from aggregator.proxy.graphql_ops import GraphQLInspector, dagster_schema
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator.proxy.storage.audit import AuditLog
from aggregator.proxy.storage.db import make_engine, migrate
from aggregator.proxy.storage.store import Store
from aggregator_tests.process_env import platform_env
from aggregator_tests.processes import free_port, stop_group

# Runs launched through GraphQL start at once in a subprocess: no daemon needed in tests.
INSTANCE_YAML = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
PASSWORD = "correct horse battery staple"


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout_s}s")


@dataclass
class Upstream:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]


def start_webserver(home: Path, path_prefix: str = "") -> Upstream:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    env = platform_env()
    env.update(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    port = free_port()
    cmd = [sys.executable, "-m", "dagster_webserver", "-m", "aggregator.definitions", "-h", "127.0.0.1",
           "-p", str(port)]
    if path_prefix:
        cmd += ["--path-prefix", path_prefix]
    with open(home / "webserver.log", "wb") as log:
        # Own process group: stopping it also stops the code server the webserver spawned.
        proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}{path_prefix}/server_info", proc)
        wait_location_loaded(f"{url}{path_prefix}/graphql", home / "webserver.log")
    except BaseException:
        stop_process(proc)  # a failed wait must not leave the webserver running
        raise
    return Upstream(url, home, proc)


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def wait_location_loaded(graphql_url: str, log: Path, timeout_s: float = 180) -> None:
    """/server_info answers before the code location has loaded; tests need the location."""
    deadline = time.monotonic() + timeout_s
    entries: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        body = httpx.post(graphql_url, json={"query": LOCATION_STATUS}, timeout=30).json()
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [e["locationOrLoadError"] for e in entries
                      if e["locationOrLoadError"]["__typename"] == "PythonError"]  # type: ignore[index]
            if errors:
                raise RuntimeError(f"code location failed to load: {errors}; log: {log}")
            return
        time.sleep(0.5)
    raise RuntimeError(f"code location not loaded after {timeout_s}s: {entries}; log: {log}")


ACTIVE_RUNS = """{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) {
  ... on Runs { results { runId } } } }"""


def wait_runs_finished(graphql_url: str, timeout_s: float = 180) -> None:
    """Runs are subprocesses of their own; stopping the webserver under them would leave them writing into a
    temporary directory pytest is about to delete."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            body = httpx.post(graphql_url, json={"query": ACTIVE_RUNS}, timeout=30).json()
        except httpx.HTTPError:
            return
        if not body["data"]["runsOrError"]["results"]:
            return
        time.sleep(1)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process and its group (code servers, run workers started by the webserver)."""
    stop_group(proc, grace_s=30.0)


@dataclass
class RunningProxy:
    url: str
    settings: ProxySettings
    store: Store
    audit: AuditLog
    app: ProxyApp
    server: uvicorn.Server
    thread: threading.Thread
    tokens: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_proxy(upstream_url: str, db_url: str, path_prefix: str = "", **overrides: object) -> RunningProxy:
    settings = load_proxy_settings(upstream_url, Path("/nonexistent"), path_prefix, environ={"AGGREGATOR_PROXY_DB_URL": db_url},
                                   **overrides)
    store, audit = open_store(settings.db_url)
    app = ProxyApp(settings, store, audit, GraphQLInspector(dagster_schema()))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws="websockets-sansio", lifespan="on", server_header=False,
                                           date_header=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    running = RunningProxy(url, settings, store, audit, app, server, thread)
    try:
        wait_http(f"{url}{path_prefix}/server_info", timeout_s=60)
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    up = start_webserver(tmp_path_factory.mktemp("proxy-home"))
    try:
        yield up
        wait_runs_finished(f"{up.url}/graphql")
    finally:
        stop_process(up.proc)


@pytest.fixture(scope="session")
def proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    db = tmp_path_factory.mktemp("proxy-db") / "proxy.db"
    running = start_proxy(upstream.url, f"sqlite:///{db}")
    try:
        for role in Role:
            running.store.add_user(role.name, PASSWORD, role)
            running.tokens[role.name], _ = running.store.create_token(role.name)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def inspector() -> GraphQLInspector:
    return GraphQLInspector(dagster_schema())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The proxy's platform database, migrated, on SQLite (dev) and on a real PostgreSQL (deployments)."""
    url = f"sqlite:///{tmp_path / 'proxy.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_db").sqlalchemy_url
    eng = make_engine(url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()
