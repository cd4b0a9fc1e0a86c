"""A real S3-compatible server on loopback for object-storage tests: moto's server (`python -m moto.server`) as
a subprocess in its own process group, stopped in `finally`.

The server checks credentials: after an IAM user with an S3 policy and an access key are created, moto's
request authentication is switched on (`/moto-api/reset-auth`), so a request signed with any other key is
refused with `InvalidAccessKeyId`, as AWS, MinIO or Ceph would refuse it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aggregator_tests.processes import free_port, stop_group

REGION = "us-east-1"
_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    region: str = REGION

    def client(self) -> Any:
        """A boto3 S3 client with the server's valid credentials (test set-up and checks)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def new_bucket(self, prefix: str = "test") -> str:
        """A fresh bucket for one test (buckets are cheap; tests never share one)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self) -> dict[str, str]:
        """The variables the tests' specs read with `{env: NAME}`."""
        return {"TEST_S3_ENDPOINT": self.endpoint, "TEST_S3_KEY": self.access_key, "TEST_S3_SECRET": self.secret_key}




@contextmanager
def running_s3_server(log_dir: Path) -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port, create credentials, turn authentication on."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"moto-{port}.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}; see {log_dir}")
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server on {endpoint} did not answer in 60 s")
            time.sleep(0.2)
        iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup",
                           region_name=REGION)
        iam.create_user(UserName="aggregator-tests")
        iam.put_user_policy(UserName="aggregator-tests", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        key = iam.create_access_key(UserName="aggregator-tests")["AccessKey"]
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop_group(proc)
