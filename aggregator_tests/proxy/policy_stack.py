"""A real dagster-webserver whose runs stay QUEUED, behind the real proxy, for the scope tests.

No daemon runs, so a launched run is recorded (job, asset and check selection, tags) but never executed: the
tests read back exactly what Dagster would run without paying for hundreds of run processes on a shared box.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aggregator.proxy.policy.rbac import Role
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import (
    PASSWORD,
    RunningProxy,
    free_port,
    start_proxy,
    wait_http,
    wait_location_loaded,
)

QUEUED_INSTANCE_YAML = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""

LOCATION = "aggregator.definitions"
REPO = "__repository__"

RUNS = """query Runs($ids: [String]) { runsOrError(filter: {runIds: $ids}) { ... on Runs { results { runId jobName
  status solidSelection assetSelection { path } assetCheckSelection { name assetKey { path } }
  tags { key value } } } } }"""
ALL_RUN_IDS = "{ runsOrError { ... on Runs { results { runId } } } }"
CHECKS = """query Checks($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name } } } } } }"""


@dataclass
class PolicyStack:
    upstream_url: str
    proxy: RunningProxy
    tokens: dict[str, str]

    def upstream(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ask Dagster directly, bypassing the proxy: the ground truth of what happened."""
        body = httpx.post(f"{self.upstream_url}/graphql", json={"query": query, "variables": variables or {}},
                          timeout=60).json()
        assert "errors" not in body, body
        return dict(body["data"])

    def run_ids(self) -> set[str]:
        return {r["runId"] for r in self.upstream(ALL_RUN_IDS)["runsOrError"]["results"]}

    def runs(self, ids: set[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(self.upstream(RUNS, {"ids": sorted(ids)})["runsOrError"]["results"])

    def checks_of(self, path: list[str]) -> list[str]:
        node = self.upstream(CHECKS, {"k": {"path": path}})["assetNodeOrError"]
        return [c["name"] for c in node["assetChecksOrError"]["checks"]]

    def post(self, user: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return httpx.post(f"{self.proxy.url}/graphql", json={"query": query, "variables": variables or {}},
                          headers={"Authorization": f"Bearer {self.tokens[user]}"}, timeout=120)


# user -> (role, scope)
USERS: dict[str, tuple[Role, list[str] | None]] = {
    "sales-launcher": (Role.launcher, ["sales"]),
    "sales-editor": (Role.editor, ["sales"]),
    "launcher": (Role.launcher, None),
    "admin": (Role.admin, None),
}


def policy_stack(home: Path) -> Iterator[PolicyStack]:
    """Start webserver and proxy; stop both (the webserver's whole process group) whatever happens."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(QUEUED_INSTANCE_YAML)
    env = platform_env()
    env.update(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(dagster_home))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / "webserver.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proxy: RunningProxy | None = None
    try:
        wait_http(f"{url}/server_info", proc)
        wait_location_loaded(f"{url}/graphql", home / "webserver.log")
        proxy = start_proxy(url, f"sqlite:///{home / 'proxy.db'}")
        tokens: dict[str, str] = {}
        for user, (role, scope) in USERS.items():
            proxy.store.add_user(user, PASSWORD, role, scope)
            tokens[user], _ = proxy.store.create_token(user)
        yield PolicyStack(url, proxy, tokens)
    finally:
        if proxy is not None:
            proxy.stop()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def selector(job: str | None = None, pipeline: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"repositoryName": REPO, "repositoryLocationName": LOCATION, **extra}
    if job is not None:
        out["jobName"] = job
    if pipeline is not None:
        out["pipelineName"] = pipeline
    return out
