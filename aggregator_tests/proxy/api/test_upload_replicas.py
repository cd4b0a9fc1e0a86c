"""Issue 19: a resumable upload whose chunks alternate between two proxy replicas lands byte-identical.

Two `aggregator proxy` processes, each with its own AGGREGATOR_HOME (its own disk; the second without
AGGREGATOR_PIPELINES, so it knows the specs only through the platform database), one PostgreSQL platform
database and uploads in a real S3-compatible server (moto, with authentication): every chunk goes to the
other replica than the one before, the offset is asked of either, a wrong offset is refused by the replica
that did not see the previous chunk, the retried last chunk is answered as delivered by the other replica,
and a cancel on one frees what was staged through the other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.api.upload_stack import SPEC, upstream_app
from aggregator_tests.proxy.conftest import free_port, stop_process, wait_http
from aggregator_tests.s3_server import S3Server
from aggregator_tests.testapi import serve

pytestmark = [pytest.mark.slow]


def test_chunks_alternating_between_replicas_land_byte_identical(tmp_path: Path, pg_db: PgDatabase,
                                                                 s3_server: S3Server) -> None:
    url = pg_db.sqlalchemy_url
    store, _ = open_store(url)
    store.add_user("ann", "pw-ann-long-enough", Role.launcher)
    token, _ = store.create_token("ann")
    store.engine.dispose()
    bucket = s3_server.new_bucket("replicas")
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "drop.yaml").write_text(SPEC)
    common = platform_env(AGGREGATOR_PROXY_DB_URL=url, AGGREGATOR_SPECS_DB_URL=url,
                          AGGREGATOR_UPLOADS_URL=f"s3://{bucket}/uploads",
                          AGGREGATOR_UPLOADS_S3_ENDPOINT_URL=s3_server.endpoint,
                          AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key)
    procs: list[subprocess.Popen[bytes]] = []
    with serve(upstream_app()) as upstream:
        try:
            bases = []
            for name, own in (("a", {"AGGREGATOR_PIPELINES": str(specs)}), ("b", {})):
                home, port = tmp_path / f"home-{name}", free_port()
                home.mkdir()
                with open(tmp_path / f"proxy-{name}.log", "wb") as log:
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", upstream, "--port", str(port)],
                        cwd=home, env={**common, "AGGREGATOR_HOME": str(home), **own}, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True))
                bases.append(f"http://127.0.0.1:{port}")
                wait_http(f"{bases[-1]}/api/openapi.json", procs[-1], timeout_s=120)
            _alternate(bases, token, s3_server, bucket)
        finally:
            for proc in procs:
                stop_process(proc)
    for name in ("a", "b"):  # nothing was staged on either replica's own disk
        assert not (tmp_path / f"home-{name}" / "uploads" / ".staging").exists()


def _alternate(bases: list[str], token: str, s3_server: S3Server, bucket: str) -> None:
    payload = b"id,name\n" + b"".join(f"{i},row {i}\n".encode() for i in range(40_000))
    total, step = len(payload), 64 << 10
    starts = list(range(0, total, step))
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        def put(base: str, first: int, end: int, name: str = "big.csv") -> httpx.Response:
            return client.put(f"{base}/api/uploads/drop/{name}", content=payload[first:end], headers={
                "Content-Range": f"bytes {first}-{end - 1}/{total}", "Content-Type": "application/octet-stream"})

        for n, first in enumerate(starts):
            base, other = bases[n % 2], bases[(n + 1) % 2]
            end = min(first + step, total)
            if n == 3:  # the replica that did not take chunk 2 knows it was taken
                stale = put(base, starts[1], starts[2])
                assert stale.status_code == 409 and f"byte {first}" in stale.json()["detail"], stale.text
                assert client.get(f"{other}/api/uploads/drop/big.csv").json()["received"] == first
            answer = put(base, first, end)
            assert answer.status_code == 200, answer.text
            assert answer.json()["received"] == end and answer.json()["complete"] is (end == total)
        # The last chunk again, through the replica that did not deliver it: answered as delivered.
        again = put(bases[len(starts) % 2], starts[-1], total)
        assert again.status_code == 200 and again.json()["complete"] is True, again.text
        # A cancel on one replica frees what was staged through the other.
        assert put(bases[0], 0, step, "cancel.csv").status_code == 200
        cancelled = client.delete(f"{bases[1]}/api/uploads/drop/cancel.csv")
        assert cancelled.status_code == 200 and cancelled.json()["removed_bytes"] == step, cancelled.text
    s3 = s3_server.client()
    assert s3.get_object(Bucket=bucket, Key="uploads/inbox/big.csv")["Body"].read() == payload
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="uploads/").get("Contents", [])]
    assert keys == ["uploads/inbox/big.csv"], keys
