"""Uploads staged on a local (or shared) directory under the uploads root: quotas, expiry, delivery."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.uploads.deliver import finalize, recover, sweep
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.staging import Staging, Upload
from aggregator.proxy.uploads.store import Chunk, UploadDeleted, UploadStatus


def _status(final: Path, up: Upload) -> UploadStatus:
    meta = up.read_meta()
    if meta is not None:
        return UploadStatus(filename=final.name, received=up.received(), total=meta.total, complete=False)
    if final.exists():
        size = final.stat().st_size
        return UploadStatus(filename=final.name, received=size, total=size, complete=True)
    return UploadStatus(filename=final.name, received=0, total=None, complete=False)


def _not_staged(final: Path, chunk: Chunk) -> UploadStatus:
    """A chunk for an upload with nothing staged: a retry of the last chunk of a delivered file is answered as
    delivered (the client lost the answer, maybe to a crash); anything else says where to start."""
    if final.exists():
        size = final.stat().st_size
        if chunk.last + 1 == chunk.total == size:
            with open(final, "rb") as delivered:
                delivered.seek(chunk.first)
                if delivered.read(len(chunk.data)) == chunk.data:
                    return UploadStatus(filename=final.name, received=size, total=size, complete=True)
        raise ApiError(409, f"{final.name} is already in the sensor's directory; choose another name")
    raise ApiError(409, f"no upload of {final.name} in progress (never started, expired or cancelled); "
                   f"start again with the chunk at byte 0")


class LocalUploads:
    """`UploadStore` on a directory; uploads a crash left half-delivered are finished when it is created."""

    def __init__(self, uploads_root: Path, limits: UploadLimits) -> None:
        self.staging = Staging(uploads_root, limits)
        self.limits = limits
        sweep(self.staging)

    @property
    def root(self) -> Path:
        return self.staging.root

    def status(self, pipeline: str, filename: str, final: Path) -> UploadStatus:
        up = self.staging.upload(pipeline, filename)
        with self.staging.locked(up, create=False) as held:
            if held:
                recover(self.staging, up)
        return _status(final, up)

    def append(self, pipeline: str, filename: str, final: Path, user: str, chunk: Chunk) -> UploadStatus:
        staging = self.staging
        up = staging.upload(pipeline, filename)
        if chunk.first == 0 and up.read_meta() is None:
            if final.exists():
                return _not_staged(final, chunk)
            with staging.quota_lock():
                if up.read_meta() is None:
                    self._admit(user, chunk.total)
                with staging.locked(up, create=True):
                    if up.read_meta() is None and not up.commit.exists():
                        staging.write_meta(up, staging.new_meta(pipeline, filename, user, chunk.total, final))
                    return self._append_locked(up, final, chunk)
        with staging.locked(up, create=False) as held:
            if not held:
                return _not_staged(final, chunk)
            return self._append_locked(up, final, chunk)

    def cancel(self, pipeline: str, filename: str, authorize: Callable[[str], None]) -> UploadDeleted:
        up = self.staging.upload(pipeline, filename)
        with self.staging.locked(up, create=False) as held:
            meta = recover(self.staging, up) if held else None
            if meta is None:
                raise ApiError(404, f"no staged upload of {filename!r} for {pipeline!r} (a delivered file is the "
                               "pipeline's input now, not an upload)")
            authorize(meta.user)
            removed = up.received()
            self.staging.remove(up)
        return UploadDeleted(filename=filename, removed_bytes=removed)

    def _admit(self, user: str, total: int) -> None:
        """Room for a new upload of `total` bytes by `user`, or the status that says why not."""
        limits = self.limits
        sweep(self.staging)  # expire abandoned uploads before counting them
        mine, everyone = self.staging.usage(user)
        if mine + total > limits.user_quota_bytes:
            raise ApiError(413, f"upload quota of {user}: {mine} of {limits.user_quota_bytes} bytes in use (staged "
                           f"uploads and delivered files not yet consumed); {total} more do not fit. Cancel staged "
                           "uploads (DELETE this path) or wait until the pipeline has consumed earlier files")
        if everyone + total > limits.total_quota_bytes:
            raise ApiError(507, f"the uploads area holds {everyone} of {limits.total_quota_bytes} bytes; {total} more "
                           "do not fit. Try again once pipelines have consumed their files")
        if self.staging.free_bytes() < total:
            raise ApiError(507, f"not enough free disk space for {total} bytes in the uploads area")

    def _append_locked(self, up: Upload, final: Path, chunk: Chunk) -> UploadStatus:
        meta = recover(self.staging, up)
        if meta is None:
            return _not_staged(final, chunk)
        if meta.total != chunk.total:
            raise ApiError(409, f"this upload was started with total {meta.total} bytes, not {chunk.total}")
        received = up.received()
        if chunk.first != received:
            raise ApiError(409, f"expected the chunk starting at byte {received}; resume from there "
                           "(GET this path for the offset)")
        with open(up.part, "ab") as out:
            out.write(chunk.data)
            out.flush()
            os.fsync(out.fileno())
        if chunk.last + 1 == chunk.total:
            finalize(self.staging, up, meta)
        return _status(final, up)
