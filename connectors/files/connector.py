"""The files connector's declaration (see connectors/connector_type.py)."""

from __future__ import annotations

from typing import Any

from connectors.connector_type import Absolute, ConnectorType
from connectors.files.config import FileStream
from connectors.files.resource import FilesResource


def _paths(config: dict[str, Any], absolute: Absolute) -> dict[str, Any]:
    base_dir = config.get("base_dir")
    if not isinstance(base_dir, str) or "://" in base_dir:  # s3://, sftp://…: not a path on this machine
        return config
    return {**config, "base_dir": absolute(base_dir)}


CONNECTOR = ConnectorType(
    name="files",
    resource=FilesResource,
    stream_model=FileStream,
    summary="CSV, JSON, JSON Lines, Parquet and Excel files below a directory or in object storage / SFTP",
    tracks_state=True,  # each file version is loaded once: state lists what was loaded
    resolve_paths=_paths,
)
