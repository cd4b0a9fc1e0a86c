"""Where uploads live when the uploads root is S3-compatible object storage (`AGGREGATOR_UPLOADS_URL=s3://...`).

Sensor directories are still written (and validated) as directories under the local uploads root
(`AGGREGATOR_UPLOADS_DIR`, default `AGGREGATOR_HOME/uploads`); with an uploads URL the same relative path names
a key prefix instead: `<root>/inbox/a.csv` is the object `s3://bucket/prefix/inbox/a.csv`. The proxy stages and
delivers there (aggregator/proxy/uploads/s3.py), file sensors list there (aggregator/pipelines/automation.py).

Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, a
web-identity token, an instance role), so a pod's IAM role works without a secret; the endpoint and region of an
S3-compatible server (MinIO, Ceph, moto) come from AGGREGATOR_UPLOADS_S3_ENDPOINT_URL and
AGGREGATOR_UPLOADS_S3_REGION. boto3 is in the `aws` extra, which the image installs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from connectors.redact import sanitize_url

STAGING = ".staging"  # hidden prefix under the root: chunks of uploads in progress, never seen by a sensor


def parse_uploads_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes) of `s3://bucket[/prefix]`; ValueError naming the form otherwise."""
    parts = urlsplit(url)
    shown = sanitize_url(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"AGGREGATOR_UPLOADS_URL {shown!r} is not an s3://bucket[/prefix] URL (credentials come from "
                         "the AWS environment, never the URL)")
    prefix = parts.path.strip("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in prefix.split("/") if prefix):
        raise ValueError(f"AGGREGATOR_UPLOADS_URL {shown!r}: the prefix may not hold empty, '.' or hidden parts")
    return parts.netloc, prefix


@dataclass(frozen=True)
class S3Root:
    """The bucket and prefix that stand for the local uploads root, and how to reach them."""

    bucket: str
    prefix: str  # no leading or trailing slash; "" for the whole bucket
    local_root: Path  # the uploads root sensor directories are written against
    endpoint_url: str | None = None
    region: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def key_of(self, path: Path) -> str:
        """The object key that stands for `path` (a file or directory under the local uploads root)."""
        relative = path.resolve().relative_to(self.local_root.resolve())
        return self.key(PurePosixPath(*relative.parts).as_posix() if relative.parts else "")

    def client(self) -> Any:
        """A boto3 S3 client (thread-safe; one per store or sensor evaluation is enough)."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise RuntimeError("AGGREGATOR_UPLOADS_URL is s3:// but boto3 is not installed; install the `aws` "
                               "extra (pip install 'data-aggregator[aws]'), as the image does") from exc
        config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"},
                        max_pool_connections=32)
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region or "us-east-1",
                            config=config)


def s3_root(uploads_url: str | None, local_root: Path, endpoint_url: str | None = None,
            region: str | None = None) -> S3Root | None:
    """The S3 uploads root the settings name, or None when uploads stay on the local directory."""
    if not uploads_url:
        return None
    bucket, prefix = parse_uploads_url(uploads_url)
    return S3Root(bucket, prefix, local_root, endpoint_url or None, region or None)
