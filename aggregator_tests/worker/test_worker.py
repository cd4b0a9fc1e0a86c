"""The worker as a real process: token auth, a deadline and a memory cap per call, answers redacted by value,
sensitive columns masked. Specs, files and HTTP listeners are real; nothing is patched."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from aggregator.worker.launch import new_token, start_worker, worker_env
from aggregator_tests.proxy.conftest import free_port, stop_process, wait_http

SECRET = "pipeline-secret-5f1e2d"  # a pipeline's own secret: usable by the connector, never shown
SPEC = """
connections:
  local:
    type: files
    config: {base_dir: data}
  echo:
    type: rest
    config:
      base_url: ECHO_URL
      auth: {type: bearer, token: {env: W_TEST_TOKEN}}
  broken_url:
    type: rest
    config:
      base_url: {env: W_TEST_TOKEN}
pipelines:
  - name: w
    sources:
      - name: people
        connection: local
        stream: {type: file, path: people.csv}
        sensitive_columns: [email]
      - name: echoed
        connection: echo
        stream: {type: rest, path: echo}
    transforms:
      - name: emails
        sql: "SELECT name, email FROM {{ ref('people') }}"
      - name: forever
        sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c, {{ ref('people') }}"
      - name: big
        sql: "SELECT length(printf('%.*c', 150000000, 'x')) AS n FROM {{ ref('people') }}"
"""


@dataclass
class Worker:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def call(self, action: str, payload: dict[str, object], token: str | None = None) -> httpx.Response:
        token = self.token if token is None else token
        return httpx.post(f"{self.url}/v1/{action}", json=payload, timeout=120,
                          headers={"Authorization": f"Bearer {token}"} if token else {})


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps([{"seen": self.headers.get("Authorization", "")}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass



def _start(tmp: Path, **extra: str) -> Worker:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGGREGATOR_", "DAGSTER_"))}
    env.update(AGGREGATOR_HOME=str(tmp / "home"), AGGREGATOR_PIPELINES=str(tmp / "specs"),
               AGGREGATOR_DATA_ROOTS=str(tmp / "specs" / "data"), AGGREGATOR_ALLOWED_NETWORKS="127.0.0.0/8",
               W_TEST_TOKEN=SECRET, **extra)
    token = new_token()
    port = free_port()
    log = tmp / f"worker-{port}.log"
    with open(log, "wb") as out:
        proc = start_worker(worker_env(env, token, [], []), tmp, port, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
    except BaseException:
        stop_process(proc)
        raise
    return Worker(f"http://127.0.0.1:{port}", token, proc, log)


def _children(pid: int) -> set[int]:
    """Every descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def specs_root(tmp_path_factory: pytest.TempPathFactory, echo_url: str) -> Path:
    root = tmp_path_factory.mktemp("worker")
    (root / "specs" / "data").mkdir(parents=True)
    (root / "specs" / "w.yaml").write_text(SPEC.replace("ECHO_URL", echo_url))
    (root / "specs" / "data" / "people.csv").write_text("name,email\nada,ada@example.com\ngrace,\n")
    return root


@pytest.fixture(scope="module")
def worker(specs_root: Path) -> Iterator[Worker]:
    running = _start(specs_root, AGGREGATOR_WORKER_CALL_TIMEOUT_S="60", AGGREGATOR_WORKER_CALL_MEMORY_MB="96")
    try:
        yield running
    finally:
        stop_process(running.proc)


def test_calls_need_the_token(worker: Worker) -> None:
    for token in ("", "wrong", worker.token[:-1]):
        answer = worker.call("check", {"connection": "local"}, token=token)
        assert answer.status_code == 401 and worker.token not in answer.text
    assert httpx.get(f"{worker.url}/health", timeout=10).json() == {"status": "ok"}
    assert worker.call("check", {"connection": "local"}).json()["ok"] is True


def test_a_worker_without_a_token_does_not_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_WORKER_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "aggregator.cli", "worker", "--port", str(free_port())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and "AGGREGATOR_WORKER_TOKEN must be set" in result.stderr


def test_answers_are_redacted_by_value(worker: Worker) -> None:
    """The connector sends the pipeline's secret where it must (the API's Authorization header); an API
    echoing it back, or an error quoting it, never carries it out of the worker."""
    rows = worker.call("preview-source", {"pipeline": "w", "source": "echoed", "limit": 5})
    assert rows.status_code == 200, rows.text
    assert rows.json()["rows"] == [["Bearer ***"]]
    broken = worker.call("check", {"connection": "broken_url"})
    assert broken.status_code == 200 and broken.json()["ok"] is False
    for answer in (rows, broken):
        assert SECRET not in answer.text
    assert SECRET not in worker.log.read_text()


def test_previews_mask_sensitive_columns(worker: Worker) -> None:
    source = worker.call("preview-source", {"pipeline": "w", "source": "people", "limit": 5}).json()
    assert source["rows"] == [["ada", "***"], ["grace", None]]
    transform = worker.call("preview-transform", {"pipeline": "w", "transform": "emails", "limit": 5})
    assert transform.status_code == 200, transform.text
    assert transform.json()["rows"] == [["ada", "***"], ["grace", None]]


@pytest.fixture
def hasty(specs_root: Path) -> Iterator[Worker]:
    running = _start(specs_root, AGGREGATOR_WORKER_CALL_TIMEOUT_S="4")
    try:
        yield running
    finally:
        stop_process(running.proc)


def test_a_call_past_its_deadline_is_stopped(hasty: Worker) -> None:
    worker = hasty
    standing = _children(worker.proc.pid)  # the fork server and multiprocessing's resource tracker
    started = time.monotonic()
    answer = worker.call("preview-transform", {"pipeline": "w", "transform": "forever"})
    elapsed = time.monotonic() - started
    assert answer.status_code == 504, answer.text
    assert "4 s (AGGREGATOR_WORKER_CALL_TIMEOUT_S)" in answer.json()["detail"]
    assert 4 <= elapsed < 30
    # The call's process is gone (only the standing helpers are left), and the worker still answers.
    deadline = time.monotonic() + 30
    while _children(worker.proc.pid) - standing and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children(worker.proc.pid) - standing
    assert worker.call("check", {"connection": "local"}).status_code in (200, 504)  # answers, on a busy machine too


def test_a_call_over_its_memory_cap_fails_alone(worker: Worker, specs_root: Path) -> None:
    answer = worker.call("preview-transform", {"pipeline": "w", "transform": "big"})
    assert answer.status_code == 507, answer.text
    assert "96 MB memory cap (AGGREGATOR_WORKER_CALL_MEMORY_MB)" in answer.json()["detail"]
    assert worker.call("check", {"connection": "local"}).json()["ok"] is True
    # The same call within a larger cap: the cap, not the query, was the limit.
    roomy = _start(specs_root, AGGREGATOR_WORKER_CALL_MEMORY_MB="1024")
    try:
        fine = roomy.call("preview-transform", {"pipeline": "w", "transform": "big", "limit": 1})
        assert fine.status_code == 200, fine.text
        assert fine.json()["rows"] == [[150000000]]
    finally:
        stop_process(roomy.proc)


def test_unknown_names_and_bad_bodies(worker: Worker) -> None:
    assert worker.call("check", {"connection": "nope"}).status_code == 404
    assert worker.call("check", {"connection": 1}).status_code == 400
    assert worker.call("run-anything", {}).status_code == 404


def test_a_rotated_token_is_accepted_alongside_the_previous_one(specs_root: Path) -> None:
    """Issue 19, minor 4 (secret rotation broke work in flight): the worker rolls first with the new token and
    AGGREGATOR_WORKER_TOKEN_PREVIOUS, so proxies still on the old token keep being answered until they roll too.
    Any other token is refused."""
    previous = new_token()
    rotating = _start(specs_root, AGGREGATOR_WORKER_TOKEN_PREVIOUS=previous)
    try:
        assert rotating.call("check", {"connection": "local"}).json()["ok"] is True
        assert rotating.call("check", {"connection": "local"}, token=previous).json()["ok"] is True
        assert rotating.call("check", {"connection": "local"}, token=new_token()).status_code == 401
    finally:
        stop_process(rotating.proc)


def test_a_short_previous_token_is_refused() -> None:
    from aggregator.worker.app import WorkerSettings

    with pytest.raises(ValueError, match="AGGREGATOR_WORKER_TOKEN_PREVIOUS must be the previous token"):
        WorkerSettings.from_env({"AGGREGATOR_WORKER_TOKEN": new_token(), "AGGREGATOR_WORKER_TOKEN_PREVIOUS": "short"})
    settings = WorkerSettings.from_env({"AGGREGATOR_WORKER_TOKEN": new_token()})
    assert settings.previous_token is None
