"""Issue 18, classes 1 and 2: the API's checks, discovery and previews run in the worker, with the pipelines'
environment and the egress rule; the proxy resolves no secret and opens no connector.

A stack of its own (a real worker and a real proxy on the shared webserver) with a strict egress rule: only
the specs' own `data` directory is a data root, and loopback is allowed (the echo server) except the
platform's own services. Every platform secret has a unique canary value in the proxy's environment and,
as a misconfigured deployment would, in the worker's too; no response, header, audit row or log line of any
call below may carry one.
"""

from __future__ import annotations

import http.server
import json
import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.audit import AuditQuery
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator_tests.proxy.api.conftest import (
    ApiStack,
    pipelines_env,
    start_api_proxy,
    start_api_worker,
)
from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy, stop_process

CANARIES = {name: f"canary-{name.lower().replace('_', '-')}-7c3e" for name in (
    "AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_OIDC_CLIENT_SECRET", "AGGREGATOR_PROXY_DB_PASSWORD_X",
    "AGGREGATOR_WORKER_TOKEN_X", "DAGSTER_PG_URL", "PROXY_DB_PASSWORD", "DAGSTER_DB_PASSWORD",
    "WAREHOUSE_DB_PASSWORD", "POSTGRES_SUPERUSER_PASSWORD")}
PIPELINE_SECRET = "pipeline-echo-secret-91ab"  # the pipelines' own: sent where it belongs, never shown

ECHO = """
connections:
  echo:
    type: rest
    config:
      base_url: {url}
      auth: {{type: bearer, token: {{env: ECHO_TOKEN}}}}
pipelines:
  - name: echo
    sources:
      - {{name: seen, connection: echo, stream: {{type: rest, path: whoami}}}}
"""
HOSTILE_TOKEN = """
connections:
  evil_token:
    type: rest
    config:
      base_url: {url}
      auth: {{type: bearer, token: {{env: AGGREGATOR_ADMIN_PASSWORD}}}}
pipelines:
  - name: evil_token
    sources:
      - {{name: seen, connection: evil_token, stream: {{type: rest, path: whoami}}}}
"""
HOSTILE_URL = """
connections:
  evil_url:
    type: rest
    config: {{base_url: {{env: AGGREGATOR_ADMIN_PASSWORD}}}}
pipelines:
  - name: evil_url
    sources:
      - {{name: seen, connection: evil_url, stream: {{type: rest, path: x}}}}
"""
# Each aimed at something of the platform's: refused by the egress rule, at check and at preview.
SSRF = """
connections:
  webserver: {{type: rest, config: {{base_url: "{webserver}"}}}}
  proxy_db: {{type: sql, config: {{url: "sqlite:///{proxy_db}"}}}}
  dagster_runs: {{type: sql, config: {{url: "sqlite:///{runs_db}"}}}}
  etc: {{type: files, config: {{base_dir: /etc}}}}
  proc: {{type: files, config: {{base_dir: /proc/net}}}}
  linked: {{type: files, config: {{base_dir: "{linked}"}}}}
pipelines:
  - name: ssrf
    sources:
      - {{name: graphql, connection: webserver, stream: {{type: rest, path: graphql, params: {{query: "{{ __typename }}"}}}}}}
      - {{name: users, connection: proxy_db, stream: {{type: sql, table: users}}}}
      - {{name: runs, connection: dagster_runs, stream: {{type: sql, table: runs}}}}
      - {{name: passwd, connection: etc, stream: {{type: file, path: passwd, format: csv}}}}
      - {{name: tcp, connection: proc, stream: {{type: file, path: tcp, format: csv}}}}
      - {{name: hosts, connection: linked, stream: {{type: file, path: hosts, format: csv}}}}
"""
REFUSALS = {  # connection -> what its refusal says
    "webserver": "platform's own services", "proxy_db": "data roots", "dagster_runs": "data roots",
    "etc": "data roots", "proc": "data roots", "linked": "data roots",
}
SOURCES = {"graphql": "webserver", "users": "proxy_db", "runs": "dagster_runs", "passwd": "etc", "tcp": "proc",
           "hosts": "linked"}


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every GET with what it was sent: an attacker's listener."""

    received: list[str] = []  # noqa: RUF012 (one listener per module)

    def do_GET(self) -> None:
        type(self).received.append(str(self.headers))
        body = json.dumps([{"authorization": self.headers.get("Authorization", "")}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Strict:
    proxy: RunningProxy
    home: Path
    worker_log: Path
    tokens: dict[str, str] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)  # every response: status, headers and body

    def call(self, who: str, method: str, path: str, body: object | None = None) -> httpx.Response:
        response = httpx.request(method, f"{self.proxy.url}{path}", json=body, timeout=180,
                                 headers={"Authorization": f"Bearer {self.tokens[who]}"})
        self.seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response


@pytest.fixture(scope="module")
def strict(api_stack: ApiStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strict]:
    home = tmp_path_factory.mktemp("boundary-home")
    specs = home / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    (specs / "data" / "linked").symlink_to("/etc")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    echo = f"http://127.0.0.1:{server.server_address[1]}"
    (specs / "echo.yaml").write_text(ECHO.format(url=echo))
    (specs / "evil_token.yaml").write_text(HOSTILE_TOKEN.format(url=echo))
    (specs / "evil_url.yaml").write_text(HOSTILE_URL.format())
    proxy_db = home / "proxy.db"
    (specs / "ssrf.yaml").write_text(SSRF.format(
        webserver=api_stack.upstream_url, proxy_db=proxy_db, runs_db=api_stack.home / "dagster" / "storage" / "runs.db",
        linked=specs / "data" / "linked"))
    warehouse = f"sqlite:///{home / 'warehouse.db'}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CANARIES.items():
            patch.setenv(name, value)  # the proxy's environment
        env = {**pipelines_env(home, specs, warehouse), **CANARIES, "ECHO_TOKEN": PIPELINE_SECRET}
        env.pop("AGGREGATOR_DATA_ROOTS", None)  # the defaults: the specs' data directory, not the test's tmp
        worker_url, token, worker = start_api_worker(
            home, env, [api_stack.upstream_url.removeprefix("http://")], [f"sqlite:///{proxy_db}"],
            AGGREGATOR_ALLOWED_NETWORKS="127.0.0.0/8")
        try:
            proxy = start_api_proxy(api_stack.upstream_url, f"sqlite:///{proxy_db}",
                                    Settings(home=home, pipelines_dir=specs, warehouse_url=warehouse),
                                    (worker_url, token))
            try:
                stack = Strict(proxy, home, home / "worker.log")
                for user, role, scope in (("editor", Role.editor, None), ("viewer", Role.viewer, None),
                                          ("sales_editor", Role.editor, ["evil_token"])):
                    proxy.store.add_user(user, PASSWORD, role, scope=scope)
                    stack.tokens[user], _ = proxy.store.create_token(user)
                yield stack
            finally:
                proxy.stop()
        finally:
            stop_process(worker)
            server.shutdown()
            server.server_close()
            thread.join()


def test_a_reserved_secret_is_never_resolved_or_sent(strict: Strict) -> None:
    """The reported case: a scoped editor's REST connection with `token: {env: AGGREGATOR_ADMIN_PASSWORD}`
    and a base URL it controls. Its listener must not receive the admin password; nothing is sent at all."""
    before = len(Echo.received)
    for connection in ("evil_token", "evil_url"):
        checked = strict.call("editor", "POST", f"/api/connections/{connection}/check")
        assert checked.status_code == 409, checked.text
        assert "AGGREGATOR_ADMIN_PASSWORD is reserved for the platform" in checked.json()["detail"]
    preview = strict.call("viewer", "POST", "/api/pipelines/evil_token/sources/seen/preview", {"limit": 5})
    assert preview.status_code in (404, 409), preview.text
    assert len(Echo.received) == before


def test_a_pipeline_secret_reaches_its_api_but_never_a_viewer(strict: Strict) -> None:
    rows = strict.call("viewer", "POST", "/api/pipelines/echo/sources/seen/preview", {"limit": 5})
    assert rows.status_code == 200, rows.text
    assert rows.json()["rows"] == [["Bearer ***"]]
    assert any(PIPELINE_SECRET in headers for headers in Echo.received)  # the connector did use it
    checked = strict.call("editor", "POST", "/api/connections/echo/check")
    assert checked.status_code == 200 and checked.json()["ok"] is True


@pytest.mark.parametrize("connection", sorted(REFUSALS))
def test_connections_aimed_at_the_platform_are_refused(strict: Strict, connection: str) -> None:
    checked = strict.call("editor", "POST", f"/api/connections/{connection}/check")
    assert checked.status_code == 200, checked.text
    answer = checked.json()
    assert answer["ok"] is False and answer["message"].startswith(f"connection {connection!r}: ")
    assert REFUSALS[connection] in answer["message"]
    body = {"stream": {"type": "rest", "path": "graphql"}} if connection == "webserver" else {}
    discovered = strict.call("editor", "POST", f"/api/connections/{connection}/discover", body)
    assert discovered.status_code == 409 and REFUSALS[connection] in discovered.json()["detail"]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_previews_aimed_at_the_platform_are_refused(strict: Strict, source: str) -> None:
    preview = strict.call("viewer", "POST", f"/api/pipelines/ssrf/sources/{source}/preview", {"limit": 5})
    assert preview.status_code == 409, preview.text
    detail = preview.json()["detail"]
    assert REFUSALS[SOURCES[source]] in detail and f"connection {SOURCES[source]!r}" in detail
    # Neither the file's content nor where it is: no path outside the data roots, no passwd line.
    for leak in ("root:x:0:0", "/etc/", str(strict.home / "proxy.db"), "local_address", "__typename\":"):
        assert leak not in preview.text


def test_validation_tells_nobody_which_variables_exist(strict: Strict) -> None:
    def problems(variable: str) -> list[str]:
        spec = f"connections:\n  c: {{type: sql, config: {{url: {{env: {variable}}}}}}}\n"
        answer = strict.call("viewer", "POST", "/api/pipelines/validate", {"name": "probe", "yaml": spec})
        assert answer.status_code == 200, answer.text
        # The directory's hostile files have problems of their own: only probe.yaml's are the answer here.
        return [p["message"] for p in answer.json()["problems"] if p["file"] == "probe.yaml"]

    # Set or unset in the proxy's environment, an allowed name gets the same answer: none.
    assert problems("PATH") == problems("AGG_SURELY_UNSET_VARIABLE") == []
    refused = problems("AGGREGATOR_ADMIN_PASSWORD")
    assert refused and "reserved for the platform" in refused[0]


def test_no_canary_leaves_in_any_answer_audit_row_or_log_line(
        strict: Strict, caplog: pytest.LogCaptureFixture) -> None:
    """Runs last in the module: everything the calls above answered, audited and logged."""
    caplog.set_level(logging.DEBUG)
    for path in ("/api/connections/evil_url/check", "/api/connections/webserver/check"):
        strict.call("editor", "POST", path)
    strict.call("viewer", "POST", "/api/pipelines/ssrf/transforms/none/preview", {})
    # Refusals are audited (reads that succeed are only logged): a viewer's check on a hostile connection.
    assert strict.call("viewer", "POST", "/api/connections/evil_url/check").status_code == 403
    rows = strict.proxy.audit.query(AuditQuery(limit=1000))
    texts = {
        "responses": "\n".join(strict.seen),
        "audit": "\n".join(json.dumps(r.model_dump(mode="json")) for r in rows),
        "proxy log": caplog.text,
        "worker log": strict.worker_log.read_text(),
    }
    assert strict.seen and rows
    for where, text in texts.items():
        for name, value in {**CANARIES, "ECHO_TOKEN": PIPELINE_SECRET}.items():
            assert value not in text, f"{name}'s value leaked into the {where}"
