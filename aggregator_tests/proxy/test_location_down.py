"""Issue 20.3: with its code server down, a trigger answered `404 no pipeline 'trig'`, sending the operator
after a typo. It now answers 503 naming the code location and why, without Dagster's internal error text
(which holds the private gRPC address)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from aggregator.proxy.policy.locations import down_locations
from aggregator.proxy.policy.rbac import Role
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import INSTANCE_YAML, free_port, start_proxy, stop_process, wait_http

pytestmark = pytest.mark.slow


def test_trigger_answers_503_naming_the_location_whose_code_server_is_down(tmp_path: Path) -> None:
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    dead = free_port()  # nothing listens: the code server has died
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": dead, "location_name": "aggregator.definitions"}}]}))
    env = platform_env()
    env.update(AGGREGATOR_HOME=str(tmp_path), DAGSTER_HOME=str(dagster_home))
    port = free_port()
    with open(tmp_path / "webserver.log", "wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "-h", "127.0.0.1",
                                "-p", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    proxy = None
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", web)
        proxy = start_proxy(f"http://127.0.0.1:{port}", f"sqlite:///{tmp_path / 'proxy.db'}")
        proxy.store.add_user("launcher", "correct horse battery staple", Role.launcher)
        token, _ = proxy.store.create_token("launcher")
        response = httpx.post(f"{proxy.url}/api/pipelines/trig/trigger", headers={"authorization": f"Bearer {token}"},
                              timeout=60)
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert "code location 'aggregator.definitions' is down" in detail and "not reachable" in detail
        assert "no pipeline" not in detail and str(dead) not in response.text
        assert int(response.headers["retry-after"]) > 0
    finally:
        if proxy is not None:
            proxy.stop()
        stop_process(web)


@pytest.mark.parametrize(("entry", "expected"), [
    ({"loadStatus": "LOADING", "locationOrLoadError": None}, "it is loading"),
    ({"loadStatus": "LOADED", "locationOrLoadError": {"__typename": "PythonError",
      "message": "DagsterUserCodeUnreachableError: Could not reach user code server at 127.0.0.1:4242"}},
     "not reachable"),
    ({"loadStatus": "LOADED", "locationOrLoadError": {"__typename": "PythonError",
      "message": "spec error in /secret/path/x.yaml"}}, "failed to load"),
    ({"loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation"}}, None),
])
def test_location_states_map_to_client_safe_reasons(entry: dict[str, object], expected: str | None) -> None:
    down = down_locations({"workspaceOrError": {"locationEntries": [{"name": "loc", **entry}]}})
    if expected is None:
        assert down == []
        return
    assert len(down) == 1 and expected in down[0].reason
    # Dagster's own text (addresses, paths) never reaches the client.
    assert "4242" not in down[0].describe() and "/secret" not in down[0].describe()
