"""Regression (issue 19, blocker 1): every Kubernetes run failed. Run pods got AGGREGATOR_PIPELINES pointing at a
directory the image lacks, the code server had none and advertised the bundled samples, so the pod said
`Job "sales_job" not found`. The old tests launched a run but never executed the pod's command.

Here the chart is rendered with an operator's spec (`--set-file pipelines.specs.orders=…`), and then, with the
rendered objects only:
1. the code server is started with its rendered command, env and mounts (pod_runtime: read-only root, the
   emptyDirs and ConfigMap files at their mount paths, as UID 10001) and must advertise `orders_job`;
2. a run of it is launched through Dagster's own K8sRunLauncher configured by the rendered instance ConfigMap,
   against a recording API server on loopback: the Job body a cluster would receive;
3. that Job's container command is executed in that Job's environment and mounts: it must find the job and
   materialize it into the warehouse, with Dagster's storage in a real PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.test_utils import create_run_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._grpc.client import DagsterGrpcClient

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.kube_api import FakeApiServer
from aggregator_tests.deploy.paths import BIN, DEPLOY
from aggregator_tests.deploy.pod_runtime import BWRAP, PodRuntime, materialize
from aggregator_tests.postgres import PgDatabase, temporary_database
from aggregator_tests.tools import needs_tool

pytestmark = needs_tool(BWRAP, "needs bubblewrap (apt-get install bubblewrap; .ci/run does)")

SPEC = """\
connections:
  source_db:
    type: sql
    description: The order system's database.
    config:
      url: {env: SOURCE_DB_URL}
pipelines:
  - name: orders
    description: Orders copied from the order system.
    owners: ["team:test"]
    sources:
      - name: orders
        description: Order lines.
        connection: source_db
        stream: {type: sql, table: orders}
        write_mode: replace
        primary_key: [id]
"""


def image_env(api: FakeApiServer) -> dict[str, str]:
    """The image's ENV (deploy/Dockerfile), with the venv this test runs in standing for /opt/venv, and what the
    kubelet adds to every container: where the API server is (here the recorder; no token file is mounted)."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (final,) = [line for line in text.splitlines() if line.startswith("ENV PATH=")]
    env = dict(re.findall(r"(\w+)=(\S+)", final))
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(BIN)).replace("$PATH", "/usr/bin:/bin")
    env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = "127.0.0.1", str(api.port)
    return env


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.fixture
def cluster_db(pg_admin_url: str) -> Iterator[PgDatabase]:
    """The warehouse's database (Dagster's storage is `pg_db`)."""
    with temporary_database(pg_admin_url) as db:
        yield db


@pytest.fixture
def source_db(pg_admin_url: str) -> Iterator[PgDatabase]:
    """The order system's database. Not the warehouse: a SQL source may not read the platform's warehouse (the
    access layer refuses it; pipelines read each other's tables through refs)."""
    with temporary_database(pg_admin_url) as db:
        with psycopg.connect(db.dsn) as conn:
            conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric)")
            conn.execute("INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 25) g")
        yield db


@pytest.fixture
def bucket() -> Iterator[tuple[str, dict[str, bytes]]]:
    """An S3 endpoint on loopback that keeps what is PUT (path-style: /<bucket>/<key>), for the compute logs the
    run pod uploads; (endpoint URL, objects by path)."""
    objects: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            objects[self.path.split("?")[0]] = body
            self.send_response(200)
            self.send_header("ETag", f'"{hashlib.md5(body).hexdigest()}"')  # noqa: S324 (S3's ETag is an MD5)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", objects
    finally:
        server.shutdown()
        server.server_close()


def wait_for_grpc(port: int, proc: subprocess.Popen[bytes], log: Path, deadline_s: float = 180) -> None:
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"code server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            client.ping("up")
            return
        except Exception:  # noqa: BLE001 (not up yet: the process is still importing)
            time.sleep(0.5)
    pytest.fail(f"code server not answering after {deadline_s}s:\n{log.read_text()[-4000:]}")


def test_rendered_run_pod_finds_and_materializes_the_operators_job(
    helm: Path, tmp_path: Path, pg_db: PgDatabase, cluster_db: PgDatabase, source_db: PgDatabase, free_port: int,
    in_cluster: FakeApiServer, bucket: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, uploaded = bucket
    spec = tmp_path / "orders.yaml"
    spec.write_text(SPEC)
    objects = render(helm, tmp_path / "helm", "--set-file", f"pipelines.specs.orders={spec}")
    configmaps = {name: o["data"] for name, o in by_kind(objects, "ConfigMap").items()}
    # The Secrets an operator creates (docs/deploy.md, "Secrets"), with this machine's databases.
    secrets = {
        "aggregator-dagster-db": {"DAGSTER_PG_URL": pg_db.dsn},
        "aggregator-runs": {"AGGREGATOR_WAREHOUSE_URL": cluster_db.sqlalchemy_url,
                            "SOURCE_DB_URL": source_db.sqlalchemy_url},
        # An S3-compatible store's endpoint goes in the same secret as its keys (docs/deploy.md).
        "aggregator-compute-logs": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret",
                                    "AWS_ENDPOINT_URL_S3": endpoint},
    }

    # 1. The code server, as the chart runs it (host and port localised to loopback).
    deployment = by_kind(objects, "Deployment")["aggregator-code-server"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    code_server = materialize(pod, container, configmaps, secrets, tmp_path / "code-server", image_env(in_cluster))
    command = list(container["command"])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(free_port)
    log = tmp_path / "code-server.log"
    proc = code_server.start(command, log)
    try:
        wait_for_grpc(free_port, proc, log)

        # 2. A run launched by the K8sRunLauncher of the rendered instance (the daemon's job).
        home = tmp_path / "daemon-home"
        home.mkdir()
        (home / "dagster.yaml").write_text(configmaps["aggregator-dagster-instance"]["dagster.yaml"])
        monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
        target = GrpcServerTarget(host="127.0.0.1", port=free_port, socket=None, location_name="aggregator")
        with (dg.DagsterInstance.from_config(str(home)) as instance,
              WorkspaceProcessContext(instance, target) as workspace):
            location = workspace.create_request_context().get_code_location("aggregator")
            (repository,) = location.get_repositories().values()
            jobs = {j.name for j in repository.get_all_jobs()}
            assert "orders_job" in jobs, f"the code server advertises {sorted(jobs)}"
            assert not {"sales_job", "shop_job"} & jobs, "the code server loaded the bundled samples"
            remote = repository.get_full_job("orders_job")
            run = create_run_for_test(instance, job_name="orders_job", job_code_origin=remote.get_python_origin(),
                                      remote_job_origin=remote.get_remote_origin(),
                                      tags={"aggregator/pipeline": "orders"})
            instance.launch_run(run.run_id, workspace.create_request_context())
        (job,) = in_cluster.created["/apis/batch/v1/namespaces/dagster/jobs"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # 3. The Job's pod, executed as the kubelet would run it.
    run_pod = job["spec"]["template"]["spec"]
    (run_container,) = run_pod["containers"]
    assert run_container["image"] == "registry.example.com/data-aggregator:0.1.0"
    assert run_pod["automountServiceAccountToken"] is False
    runtime: PodRuntime = materialize(run_pod, run_container, configmaps, secrets, tmp_path / "run-pod", image_env(in_cluster))
    argv = [*run_container.get("command", []), *run_container["args"]]
    result = runtime.run(argv, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    with dg.DagsterInstance.from_config(str(home)) as instance:
        finished = instance.get_run_by_id(run.run_id)
        assert finished is not None and finished.status == dg.DagsterRunStatus.SUCCESS, finished
        records = instance.get_records_for_run(run.run_id).records
        materialized = [r.event_log_entry.dagster_event.asset_key for r in records
                        if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.is_step_materialization]
        assert materialized, "the run materialized nothing"
    with psycopg.connect(cluster_db.dsn) as conn:
        # The destination table of source `orders` of pipeline `orders`.
        (name,) = [t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name LIKE '%orders'").fetchall()]
        count = conn.execute(f'SELECT count(*) FROM public."{name}"').fetchone()
    assert count == (25,)
    # Its step logs reached the bucket: they outlive the pod.
    assert any(path.startswith("/aggregator-compute-logs/compute-logs/") for path in uploaded), sorted(uploaded)
    # The run pod read its specs from the mounted file, not from a directory the image lacks.
    assert json.dumps(runtime.env).count("/opt/dagster/pipelines") == 1
