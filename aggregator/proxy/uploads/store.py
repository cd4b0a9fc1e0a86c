"""What the upload routes need from wherever uploads are staged.

`LocalUploads` (local.py) stages on a directory every process serving uploads shares (one replica, `aggregator
dev`); `S3Uploads` (s3.py) stages in S3-compatible object storage with its state in the platform database, so
any replica takes any chunk. Names, the target path, sizes, first
bytes and roles are checked by the route before any of these runs; refusals are `ApiError`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field


class UploadStatus(BaseModel):
    """Where an upload stands."""

    filename: str = Field(description="File name in the sensor's directory.")
    received: int = Field(description="Bytes received so far; resume with Content-Range starting here.")
    total: int | None = Field(description="Declared total size (null before the first chunk).")
    complete: bool = Field(description="True once the file is in the sensor's directory.")


class UploadDeleted(BaseModel):
    """A staged upload that was cancelled."""

    filename: str = Field(description="File name the upload was for.")
    removed_bytes: int = Field(description="Staged bytes removed.")


@dataclass(frozen=True)
class Chunk:
    """One validated `Content-Range: bytes first-last/total` chunk."""

    first: int
    last: int
    total: int
    data: bytes


class UploadStore(Protocol):
    @property
    def root(self) -> Path:
        """The local uploads root sensor directories are resolved against (with S3, it names the prefix)."""
        ...

    def status(self, pipeline: str, filename: str, final: Path) -> UploadStatus:
        """Where the upload stands (finishing a delivery a crash interrupted first)."""
        ...

    def append(self, pipeline: str, filename: str, final: Path, user: str, chunk: Chunk) -> UploadStatus:
        """Admit (first chunk: quotas), append, and deliver to `final` once whole."""
        ...

    def cancel(self, pipeline: str, filename: str, authorize: Callable[[str], None]) -> UploadDeleted:
        """Remove a staged upload; `authorize(owner)` raises when the caller may not."""
        ...
