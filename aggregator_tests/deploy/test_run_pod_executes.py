"""Regression (issue 19, blocker 1): every Kubernetes run failed. Run pods got AGGREGATOR_PIPELINES pointing at a
directory the image lacks, the code server had none and advertised the bundled samples, so the pod said
`Job "sales_job" not found`. The old tests launched a run but never executed the pod's command.

Here the chart is rendered with an operator's spec (`--set-file pipelines.specs.orders=…`), and then, with the
rendered objects only:
0. the spec-store apply hook Job is executed in its environment and mounts (pod_runtime: read-only root, the
   emptyDirs and ConfigMap files at their mount paths, as UID 10001): it stores the spec in the platform
   database (a real PostgreSQL) as the tables' owner, prints the diff, grants the read-only role, and a second
   run changes nothing;
1. the code server is started with its rendered command, env and mounts, reading the store as the read-only
   role, and must advertise `orders_job`;
2. a run of it is launched through Dagster's own K8sRunLauncher configured by the rendered instance ConfigMap,
   against a recording API server on loopback: the Job body a cluster would receive;
3. that Job's container command is executed in that Job's environment and mounts: it must load the spec
   revision the run was launched with from the store (no spec file is mounted; a newer revision applied
   meanwhile does not change the run), find the job and materialize it into the warehouse, with Dagster's
   storage in a real PostgreSQL.
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
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
from dagster._core.test_utils import create_run_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import GrpcServerTarget
from dagster._grpc.client import DagsterGrpcClient

from aggregator.specstore.pinning import REVISION_KEY
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
def spec_store(pg_admin_url: str) -> Iterator[tuple[PgDatabase, str, str]]:
    """The platform (proxy) database holding the spec store, and a role that may only connect to it; (database,
    that role's name, its SQLAlchemy URL). The apply Job grants the role SELECT on the store's tables."""
    role, password = f"t{uuid.uuid4().hex[:8]}_specs_reader", uuid.uuid4().hex
    try:
        with temporary_database(pg_admin_url) as db:
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
                conn.execute(f'GRANT CONNECT ON DATABASE "{db.name}" TO "{role}"')
            url = urlsplit(db.sqlalchemy_url)
            netloc = f"{role}:{password}@{url.hostname}:{url.port or 5432}"
            yield db, role, urlunsplit((url.scheme, netloc, url.path, url.query, ""))
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


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


def apply_specs(objects: list[dict], secrets: dict[str, dict[str, str]], root: Path,
                api: FakeApiServer) -> subprocess.CompletedProcess[str]:
    """The rendered spec-store apply hook Job, executed in its environment and mounts (deploy/bin as the image
    has it at /opt/dagster/bin)."""
    configmaps = {name: o["data"] for name, o in by_kind(objects, "ConfigMap").items()}
    pod = by_kind(objects, "Job")["aggregator-specs-apply"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    runtime = materialize(pod, container, configmaps, secrets, root, image_env(api))
    runtime.binds.append((DEPLOY / "bin", "/opt/dagster/bin", True))
    return runtime.run(container["command"], timeout=300)


def test_rendered_run_pod_finds_and_materializes_the_operators_job(
    helm: Path, tmp_path: Path, pg_db: PgDatabase, cluster_db: PgDatabase, source_db: PgDatabase, free_port: int,
    in_cluster: FakeApiServer, bucket: tuple[str, dict[str, bytes]], spec_store: tuple[PgDatabase, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, uploaded = bucket
    store_db, reader, reader_url = spec_store
    spec = tmp_path / "orders.yaml"
    spec.write_text(SPEC)
    chart_args = ("--set-file", f"pipelines.specs.orders={spec}", "--set", f"specStore.readerRole={reader}")
    objects = render(helm, tmp_path / "helm", *chart_args)
    configmaps = {name: o["data"] for name, o in by_kind(objects, "ConfigMap").items()}
    # The Secrets an operator creates (docs/deploy.md, "Secrets"), with this machine's databases.
    secrets = {
        "aggregator-dagster-db": {"DAGSTER_PG_URL": pg_db.dsn},
        "aggregator-runs": {"AGGREGATOR_WAREHOUSE_URL": cluster_db.sqlalchemy_url,
                            "SOURCE_DB_URL": source_db.sqlalchemy_url},
        # An S3-compatible store's endpoint goes in the same secret as its keys (docs/deploy.md).
        "aggregator-compute-logs": {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret",
                                    "AWS_ENDPOINT_URL_S3": endpoint},
        # The platform database as its owner (the apply Job reads this key alone) and as the read-only role.
        "aggregator-proxy": {"AGGREGATOR_PROXY_DB_URL": store_db.sqlalchemy_url, "AGGREGATOR_ADMIN_PASSWORD": "x" * 16},
        "aggregator-specs": {"AGGREGATOR_SPECS_DB_URL": reader_url},
    }

    # 0. The GitOps path: the hook Job stores the operator's spec, with its diff in the log; again: no change.
    applied = apply_specs(objects, secrets, tmp_path / "apply-1", in_cluster)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    assert "+++ b/orders.yaml" in applied.stdout and "applied as spec store revision 1" in applied.stdout
    assert f"role {reader} may read the spec store" in applied.stdout
    again = apply_specs(objects, secrets, tmp_path / "apply-2", in_cluster)
    assert again.returncode == 0 and "no changes (spec store revision 1)" in again.stdout, again.stdout + again.stderr
    # The role of secret `specs` reads the store and cannot change it.
    with psycopg.connect(reader_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT max(revision) FROM spec_store_revisions").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM spec_store_files")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM proxy_users")

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
            # With its execution plan, as the webserver and daemon create runs: the plan carries the spec revision
            # the code server loaded (the pin) to the run pod.
            plan = location.get_execution_plan(remote, {}, None, None, instance)
            run = create_run_for_test(instance, job_name="orders_job", job_code_origin=remote.get_python_origin(),
                                      remote_job_origin=remote.get_remote_origin(),
                                      job_snapshot=remote.job_snapshot,
                                      execution_plan_snapshot=plan.execution_plan_snapshot,
                                      tags={"aggregator/pipeline": "orders"})
            instance.launch_run(run.run_id, workspace.create_request_context())
        (job,) = in_cluster.created["/apis/batch/v1/namespaces/dagster/jobs"]
        # The operator changes the spec before the pod starts (an upgrade) to a table that does not exist: the
        # run must keep revision 1, or it fails.
        spec.write_text(SPEC.replace("table: orders}", "table: orders_not_there}"))
        newer = apply_specs(render(helm, tmp_path / "helm", *chart_args), secrets, tmp_path / "apply-3", in_cluster)
        assert "applied as spec store revision 2" in newer.stdout, newer.stdout + newer.stderr
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
    # The run pod read its specs from the store as the read-only role: no specs directory, no spec mount.
    assert "AGGREGATOR_PIPELINES" not in runtime.env and "/opt/dagster/pipelines" not in json.dumps(run_pod)
    assert runtime.env["AGGREGATOR_SPECS_DB_URL"] == reader_url
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert run.execution_plan_snapshot_id is not None
        pinned = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id).repository_load_data
    assert pinned is not None and pinned.reconstruction_metadata[REVISION_KEY].data == "1"
