"""File sensors and files connections when delivered uploads live in object storage (AGGREGATOR_UPLOADS_URL).

A sensor directory and a files `base_dir` under the uploads root name the same key prefix in the uploads
bucket (aggregator/uploads_s3.py): the sensor lists that prefix instead of a local directory, and the
connection reads `s3://bucket/prefix/...` with the uploads endpoint and region, credentials from the AWS
environment as everywhere else. Objects under hidden names (the `.staging` area) are never a delivered file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aggregator.settings import Settings
from aggregator.uploads_s3 import S3Root


def listed_objects(root: S3Root, directory: Path, pattern: str, client: Any | None = None) -> dict[str, float]:
    """Name (relative to `directory`) -> modification time of the delivered objects matching `pattern`."""
    from fsspec.utils import glob_translate

    prefix = root.key_of(directory) + "/"
    matcher = re.compile(glob_translate(pattern))
    s3 = client if client is not None else root.client()
    found: dict[str, float] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=root.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name = str(item["Key"])[len(prefix):]
            if any(part.startswith(".") for part in name.split("/")) or not matcher.fullmatch(name):
                continue
            found[name] = float(item["LastModified"].timestamp())
    return found


def uploads_files_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A files connection's config with a `base_dir` under the uploads root pointed at the uploads bucket when
    uploads live there; any other config (another directory, a remote base_dir, storage_options of its own)
    unchanged."""
    root = settings.uploads_s3
    base = config.get("base_dir")
    if root is None or not isinstance(base, str) or "://" in base or config.get("storage_options"):
        return config
    path = Path(base).expanduser()
    if not path.is_absolute():
        return config
    resolved = path.resolve()
    if not resolved.is_relative_to(root.local_root.resolve()):
        return config
    options = {k: v for k, v in (("endpoint_url", root.endpoint_url), ("region", root.region)) if v}
    return {**config, "base_dir": f"s3://{root.bucket}/{root.key_of(resolved)}".rstrip("/"),
            "storage_options": options}
