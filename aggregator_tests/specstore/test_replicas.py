"""Issue 19: a second proxy replica on its own disk shares every piece of state with `aggregator dev`'s.

`aggregator dev` (its proxy, code server, worker, webserver, daemon) and a second `aggregator proxy --upstream
<dev's webserver>` with its own AGGREGATOR_HOME and no AGGREGATOR_PIPELINES, on one PostgreSQL platform
database: a spec written through the replica is served by dev's proxy (and written back to dev's directory),
compiled by the code server and executed by a run; one Idempotency-Key on both launches one run; the login
throttle counts the failures of both; an upload whose chunks alternate between the two lands byte-identical in
the uploads bucket (a real S3-compatible server), where dev's file sensor sees it and a run loads it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator.settings import EXAMPLE_PIPELINES_DIR
from aggregator_tests.dev_process import start_dev
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import free_port, stop_process, wait_http
from aggregator_tests.s3_server import S3Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
PASSWORD = "replica-test-password-long"
SPEC = """\
pipelines:
  - name: replica
    transforms:
      - name: marker
        sql: "SELECT 'written through the replica' AS marker"
"""
DROPBOX = """\
pipelines:
  - name: dropbox
    sensor: {{directory: inbox, pattern: "*.csv", interval_seconds: 5}}
    sources:
      - {{name: rows, connection: dropbox_files, stream: {{type: file, path: "*.csv"}}, write_mode: replace}}
connections:
  dropbox_files:
    type: files
    config: {{base_dir: {inbox}}}
"""
RUN_STATUS = 'query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }'


def _webserver_of(dev: subprocess.Popen[str]) -> str:
    """The private webserver dev's proxy forwards to (its --upstream): the replica forwards there too."""
    for child in psutil.Process(dev.pid).children(recursive=True):
        cmd = child.cmdline()
        if "proxy" in cmd and "--upstream" in cmd:
            return cmd[cmd.index("--upstream") + 1]
    raise AssertionError("dev runs no proxy")


def test_a_second_replica_shares_specs_runs_keys_and_throttles(tmp_path: Path, pg_db: PgDatabase,
                                                              s3_server: S3Server) -> None:
    url = pg_db.sqlalchemy_url
    store, _ = open_store(url)
    store.add_user("ed", PASSWORD, Role.editor)
    store.add_user("ana", PASSWORD, Role.viewer)
    token, _ = store.create_token("ed")
    store.engine.dispose()
    specs, home, replica_home = tmp_path / "specs", tmp_path / "home", tmp_path / "replica-home"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    (specs / "dropbox.yaml").write_text(DROPBOX.format(inbox=home / "uploads" / "inbox"))
    replica_home.mkdir()
    warehouse = home / "warehouse.db"
    bucket = s3_server.new_bucket("replicas")
    # The spec store in the same database, named explicitly: dev never hands a server's proxy URL to Dagster.
    # Uploads in one bucket for both proxies and dev's code server; the keys only in the AWS environment.
    common = platform_env(AGGREGATOR_PROXY_DB_URL=url, AGGREGATOR_SPECS_DB_URL=url,
                          AGGREGATOR_WAREHOUSE_URL=f"sqlite:///{warehouse}",
                          AGGREGATOR_UPLOADS_URL=f"s3://{bucket}/uploads",
                          AGGREGATOR_UPLOADS_S3_ENDPOINT_URL=s3_server.endpoint,
                          AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key)
    dev_port, replica_port = free_port(), free_port()
    dev = start_dev({**common, "AGGREGATOR_HOME": str(home), "AGGREGATOR_PIPELINES": str(specs)}, dev_port, tmp_path)
    replica: subprocess.Popen[bytes] | None = None
    try:
        upstream = _webserver_of(dev.proc)
        replica_env = {**common, "AGGREGATOR_HOME": str(replica_home), "DAGSTER_HOME": str(home / "dagster"),
                       "AGGREGATOR_PROXY_PUBLIC_ORIGIN": f"http://127.0.0.1:{replica_port}"}
        with open(tmp_path / "replica.log", "wb") as log:
            replica = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", upstream,
                                        "--port", str(replica_port)], cwd=replica_home, env=replica_env,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        a, b = f"http://127.0.0.1:{dev_port}", f"http://127.0.0.1:{replica_port}"
        wait_http(f"{b}/healthz", replica)
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=auth, timeout=300) as client:
            # Written through the replica (no specs directory of its own) ...
            created = client.post(f"{b}/api/pipelines", json={"name": "replica", "yaml": SPEC})
            assert created.status_code == 201, created.text
            assert created.json()["reloaded"] is True, created.text
            # ... served by dev's proxy, and written back to dev's directory for editor and git.
            served = client.get(f"{a}/api/pipelines/replica")
            assert served.status_code == 200 and served.json()["yaml"] == SPEC, served.text
            assert (specs / "replica.yaml").read_text() == SPEC
            # Compiled by the code server.
            nodes = client.post(f"{a}/graphql", json={"query": "{ assetNodes { assetKey { path } } }"}).json()
            assert ["replica", "marker"] in [n["assetKey"]["path"] for n in nodes["data"]["assetNodes"]], nodes
            # One Idempotency-Key on both replicas: one run.
            key = {"Idempotency-Key": "replica-test-1"}
            first = client.post(f"{b}/api/pipelines/replica/trigger", json={}, headers=key)
            second = client.post(f"{a}/api/pipelines/replica/trigger", json={}, headers=key)
            assert first.status_code == 201, first.text
            assert second.status_code == 200 and second.json()["replayed"] is True, second.text
            run_id = first.json()["run_id"]
            assert second.json()["run_id"] == run_id
            deadline = time.monotonic() + 600
            status = ""
            while time.monotonic() < deadline and status not in ("SUCCESS", "FAILURE", "CANCELED"):
                body = client.post(f"{a}/graphql", json={"query": RUN_STATUS, "variables": {"id": run_id}}).json()
                status = body["data"]["runOrError"].get("status", "")
                time.sleep(1)
            assert status == "SUCCESS", (status, dev.output[-3000:])
        with sqlite3.connect(warehouse) as conn:
            assert conn.execute("SELECT marker FROM replica_marker").fetchall() == [("written through the replica",)]

        # An upload whose chunks alternate between the replicas lands whole in the bucket; dev's sensor runs it.
        payload = b"id,name\n" + b"".join(f"{i},row {i}\n".encode() for i in range(20_000))
        step = 32 << 10
        with httpx.Client(headers=auth, timeout=300) as client:
            for n, offset in enumerate(range(0, len(payload), step)):
                chunk = payload[offset:offset + step]
                put = client.put(f"{(a, b)[n % 2]}/api/uploads/dropbox/drop.csv", content=chunk, headers={
                    "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{len(payload)}"})
                assert put.status_code == 200, put.text
            assert put.json()["complete"] is True
        landed = s3_server.client().get_object(Bucket=bucket, Key="uploads/inbox/drop.csv")["Body"].read()
        assert landed == payload
        deadline = time.monotonic() + 600
        loaded = None
        while time.monotonic() < deadline and loaded is None:
            try:
                with sqlite3.connect(warehouse) as conn:
                    loaded = conn.execute("SELECT COUNT(*), MAX(id) FROM dropbox_rows").fetchone()
            except sqlite3.OperationalError:  # no table before the sensor's run wrote it
                time.sleep(2)
        assert loaded == (20_000, 19_999), (loaded, dev.output[-3000:])

        # The login throttle: failures alternate between the replicas and count once.
        def attempt(base: str, password: str) -> int:
            with httpx.Client(timeout=120, follow_redirects=False) as c:
                return c.post(f"{base}/_auth/login", data={"username": "ana", "password": password},
                              headers={"origin": base}).status_code

        codes = [attempt((a, b)[i % 2], f"wrong guess {i}") for i in range(5)]
        assert codes == [401] * 5, codes
        assert [attempt(a, PASSWORD), attempt(b, PASSWORD)] == [429, 429]
    finally:
        if replica is not None:
            stop_process(replica)
        dev.stop()
