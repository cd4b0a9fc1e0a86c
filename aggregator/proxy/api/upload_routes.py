"""Resumable uploads into the directory a pipeline's file sensor watches.

`PUT /api/uploads/{pipeline}/{filename}` with `Content-Range: bytes <first>-<last>/<total>` appends one
chunk; `GET` on the same path says how many bytes arrived, so an interrupted upload resumes from there;
`DELETE` cancels a staged upload (its uploader, or an editor of the pipeline). Sensor directories are under
the uploads root (the spec loader refuses others); chunks are staged in its hidden `.staging` directory and
the whole file is linked into place (`uploads/deliver.py`), so the sensor never sees half a file and a crash
at any point ends with the file delivered once. Everything about a request is checked before anything is
written: the name, the pipeline and its sensor, the range, the size, the first bytes, the quotas.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Principal, Role
from aggregator.proxy.uploads.deliver import finalize, recover, sweep
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.sniff import sniff
from aggregator.proxy.uploads.staging import Staging, Upload

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


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


def _status(final: Path, up: Upload) -> UploadStatus:
    meta = up.read_meta()
    if meta is not None:
        return UploadStatus(filename=final.name, received=up.received(), total=meta.total, complete=False)
    if final.exists():
        size = final.stat().st_size
        return UploadStatus(filename=final.name, received=size, total=size, complete=True)
    return UploadStatus(filename=final.name, received=0, total=None, complete=False)


def _not_staged(final: Path, first: int, last: int, total: int, chunk: bytes) -> UploadStatus:
    """A chunk for an upload with nothing staged: a retry of the last chunk of a delivered file is answered as
    delivered (the client lost the answer, maybe to a crash); anything else says where to start."""
    if final.exists():
        size = final.stat().st_size
        if last + 1 == total == size:
            with open(final, "rb") as delivered:
                delivered.seek(first)
                if delivered.read(len(chunk)) == chunk:
                    return UploadStatus(filename=final.name, received=size, total=size, complete=True)
        raise ApiError(409, f"{final.name} is already in the sensor's directory; choose another name")
    raise ApiError(409, f"no upload of {final.name} in progress (never started, expired or cancelled); "
                   f"start again with the chunk at byte 0")


def routes(api: ApiState, limits: UploadLimits | None = None) -> list[Route]:
    limits = limits or UploadLimits.from_env()
    staging = Staging(api.platform.uploads_root, limits)
    # Uploads a crash left in the middle of their delivery are finished before the first request.
    sweep(staging)

    def _target(pipeline: str, filename: str) -> Path:
        """The final path for `filename`, from the pipeline's spec; nothing is written here."""
        if not SAFE_NAME.match(filename) or ".." in filename:
            raise ApiError(400, f"file name {filename!r} is not allowed: one name of letters, digits, '_', '.', '-', "
                           "not starting with '.' (no paths)")
        try:
            specs = load_specs(api.platform.pipelines_dir, uploads_root=staging.root)
            spec = specs.pipeline(pipeline)
        except SpecErrors:
            raise ApiError(503, "the pipeline specs do not load; fix them with `aggregator validate`") from None
        except KeyError:
            raise ApiError(404, f"no pipeline {pipeline!r}") from None
        if spec.sensor is None:
            raise ApiError(409, f"pipeline {pipeline!r} has no file sensor, so no directory takes uploads")
        directory = Path(spec.sensor.directory).resolve()
        final = (directory / filename).resolve()
        root = staging.root.resolve()
        if final.parent != directory or not directory.is_relative_to(root) or directory == root:
            raise ApiError(400, f"file name {filename!r} leaves the sensor's directory")
        return final

    def _read_status(pipeline: str, filename: str, final: Path) -> UploadStatus:
        up = staging.upload(pipeline, filename)
        with staging.locked(up, create=False) as held:
            if held:
                recover(staging, up)
        return _status(final, up)

    def _admit(final: Path, user: str, total: int) -> None:
        """Room for a new upload of `total` bytes by `user`, or the status that says why not."""
        sweep(staging)  # expire abandoned uploads before counting them
        mine, everyone = staging.usage(user)
        if mine + total > limits.user_quota_bytes:
            raise ApiError(413, f"upload quota of {user}: {mine} of {limits.user_quota_bytes} bytes in use (staged "
                           f"uploads and delivered files not yet consumed); {total} more do not fit. Cancel staged "
                           "uploads (DELETE this path) or wait until the pipeline has consumed earlier files")
        if everyone + total > limits.total_quota_bytes:
            raise ApiError(507, f"the uploads area holds {everyone} of {limits.total_quota_bytes} bytes; {total} more "
                           "do not fit. Try again once pipelines have consumed their files")
        if staging.free_bytes() < total:
            raise ApiError(507, f"not enough free disk space for {total} bytes in the uploads area")

    def _append(pipeline: str, filename: str, final: Path, user: str, first: int, last: int, total: int,
                chunk: bytes) -> UploadStatus:
        up = staging.upload(pipeline, filename)
        if first == 0 and up.read_meta() is None:
            if final.exists():
                return _not_staged(final, first, last, total, chunk)
            with staging.quota_lock():
                if up.read_meta() is None:
                    _admit(final, user, total)
                with staging.locked(up, create=True):
                    if up.read_meta() is None and not up.commit.exists():
                        staging.write_meta(up, staging.new_meta(pipeline, filename, user, total, final))
                    return _append_locked(up, final, first, last, total, chunk)
        with staging.locked(up, create=False) as held:
            if not held:
                return _not_staged(final, first, last, total, chunk)
            return _append_locked(up, final, first, last, total, chunk)

    def _append_locked(up: Upload, final: Path, first: int, last: int, total: int, chunk: bytes) -> UploadStatus:
        meta = recover(staging, up)
        if meta is None:
            return _not_staged(final, first, last, total, chunk)
        if meta.total != total:
            raise ApiError(409, f"this upload was started with total {meta.total} bytes, not {total}")
        received = up.received()
        if first != received:
            raise ApiError(409, f"expected the chunk starting at byte {received}; resume from there "
                           "(GET this path for the offset)")
        with open(up.part, "ab") as out:
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if last + 1 == total:
            finalize(staging, up, meta)
        return _status(final, up)

    def _cancel(pipeline: str, filename: str, principal: Principal) -> UploadDeleted:
        up = staging.upload(pipeline, filename)
        with staging.locked(up, create=False) as held:
            meta = recover(staging, up) if held else None
            if meta is None:
                raise ApiError(404, f"no staged upload of {filename!r} for {pipeline!r} (a delivered file is the "
                               "pipeline's input now, not an upload)")
            if meta.user != principal.user:
                require(principal, Role.editor, "cancel another user's upload", [pipeline])
            removed = up.received()
            staging.remove(up)
        return UploadDeleted(filename=filename, removed_bytes=removed)

    async def upload_status(req: ApiRequest) -> UploadStatus:
        """How many bytes of this upload arrived (resume from there)."""
        pipeline = req.params["pipeline"]
        require(req.principal, Role.launcher, "upload", [pipeline])
        final = await api.services.run_io(_target, pipeline, req.params["filename"])
        status: UploadStatus = await api.services.run_io(_read_status, pipeline, req.params["filename"], final)
        return status

    async def upload_chunk(req: ApiRequest) -> UploadStatus:
        """Append one chunk (`Content-Range: bytes first-last/total`); the last one moves the file in place."""
        pipeline, filename = req.params["pipeline"], req.params["filename"]
        require(req.principal, Role.launcher, "upload", [pipeline])
        found = _RANGE.match(req.header("content-range") or "")
        if found is None:
            raise ApiError(400, "send Content-Range: bytes <first>-<last>/<total> with each chunk")
        first, last, total = (int(g) for g in found.groups())
        if total > limits.max_file_bytes:
            raise ApiError(413, f"upload of {total} bytes is over the limit of {limits.max_file_bytes}")
        if last < first or last >= total or last - first + 1 != len(req.raw_body):
            raise ApiError(400, f"Content-Range {first}-{last}/{total} does not match the {len(req.raw_body)} "
                           "bytes sent")
        final = await api.services.run_io(_target, pipeline, filename)
        if first == 0 and (problem := sniff(final.name, req.raw_body[:512])):
            raise ApiError(415, f"{final.name}: {problem}")
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [pipeline], "files": [final.name]}
        status: UploadStatus = await api.services.run_io(_append, pipeline, filename, final, req.principal.user,
                                                         first, last, total, req.raw_body)
        return status

    async def cancel_upload(req: ApiRequest) -> UploadDeleted:
        """Cancel a staged upload and free its bytes: its uploader, or an editor of the pipeline."""
        pipeline, filename = req.params["pipeline"], req.params["filename"]
        require(req.principal, Role.launcher, "cancel an upload", [pipeline])
        await api.services.run_io(_target, pipeline, filename)
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [pipeline], "files": [filename]}
        deleted: UploadDeleted = await api.services.run_io(_cancel, pipeline, filename, req.principal)
        return deleted

    return [
        Route("GET", "/api/uploads/{pipeline}/{filename}", upload_status, "Upload progress", Role.launcher,
              response=UploadStatus, statuses=(409, 503)),
        Route("PUT", "/api/uploads/{pipeline}/{filename}", upload_chunk, "Upload a chunk", Role.launcher,
              response=UploadStatus, raw_body=True, headers_in=("Content-Range",), statuses=(409, 413, 415, 507)),
        Route("DELETE", "/api/uploads/{pipeline}/{filename}", cancel_upload, "Cancel a staged upload",
              Role.launcher, response=UploadDeleted, statuses=(404, 409)),
    ]
