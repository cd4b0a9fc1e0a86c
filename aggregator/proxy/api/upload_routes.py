"""Resumable uploads into the directory a pipeline's file sensor watches.

`PUT /api/uploads/{pipeline}/{filename}` with `Content-Range: bytes <first>-<last>/<total>` appends one
chunk; `GET` on the same path says how many bytes arrived, so an interrupted upload resumes from there;
`DELETE` cancels a staged upload (its uploader, or an editor of the pipeline). Sensor directories are under
the uploads root (the spec loader refuses others); chunks are staged in its hidden `.staging` directory and
the whole file is linked into place (`uploads/deliver.py`), so the sensor never sees half a file and a crash
at any point ends with the file delivered once. With `AGGREGATOR_UPLOADS_URL=s3://...` the same happens in
object storage shared by every replica (`uploads/s3.py`). Everything about a request is checked before anything is
written: the name, the pipeline and its sensor, the range, the size, the first bytes, the quotas.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Principal, Role
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.local import LocalUploads
from aggregator.proxy.uploads.s3 import S3Uploads
from aggregator.proxy.uploads.sniff import sniff
from aggregator.proxy.uploads.store import Chunk, UploadDeleted, UploadStatus, UploadStore

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def open_upload_store(api: ApiState, limits: UploadLimits) -> UploadStore:
    """Object storage when AGGREGATOR_UPLOADS_URL names it (several replicas), else the local uploads root."""
    s3 = api.platform.uploads_s3
    if s3 is not None:
        return S3Uploads(s3, api.services.store.engine, limits)
    return LocalUploads(api.platform.uploads_root, limits)  # finishes deliveries a crash interrupted


def routes(api: ApiState, limits: UploadLimits | None = None) -> list[Route]:
    limits = limits or UploadLimits.from_env()
    store = open_upload_store(api, limits)

    def _target(pipeline: str, filename: str) -> Path:
        """The final path for `filename`, from the pipeline's spec; nothing is written here."""
        if not SAFE_NAME.match(filename) or ".." in filename:
            raise ApiError(400, f"file name {filename!r} is not allowed: one name of letters, digits, '_', '.', '-', "
                           "not starting with '.' (no paths)")
        try:
            specs = load_specs(api.platform.pipelines_dir, api.specs.texts(), uploads_root=store.root)
            spec = specs.pipeline(pipeline)
        except SpecErrors:
            raise ApiError(503, "the pipeline specs do not load; fix them with `aggregator validate`") from None
        except KeyError:
            raise ApiError(404, f"no pipeline {pipeline!r}") from None
        if spec.sensor is None:
            raise ApiError(409, f"pipeline {pipeline!r} has no file sensor, so no directory takes uploads")
        directory = Path(spec.sensor.directory).resolve()
        final = (directory / filename).resolve()
        root = store.root.resolve()
        if final.parent != directory or not directory.is_relative_to(root) or directory == root:
            raise ApiError(400, f"file name {filename!r} leaves the sensor's directory")
        return final

    def _authorize_cancel(principal: Principal, pipeline: str) -> Callable[[str], None]:
        def check(owner: str) -> None:
            if owner != principal.user:
                require(principal, Role.editor, "cancel another user's upload", [pipeline])
        return check

    async def upload_status(req: ApiRequest) -> UploadStatus:
        """How many bytes of this upload arrived (resume from there)."""
        pipeline = req.params["pipeline"]
        require(req.principal, Role.launcher, "upload", [pipeline])
        final = await api.services.run_io(_target, pipeline, req.params["filename"])
        status: UploadStatus = await api.services.run_io(store.status, pipeline, req.params["filename"], final)
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
        status: UploadStatus = await api.services.run_io(store.append, pipeline, filename, final, req.principal.user,
                                                         Chunk(first, last, total, req.raw_body))
        return status

    async def cancel_upload(req: ApiRequest) -> UploadDeleted:
        """Cancel a staged upload and free its bytes: its uploader, or an editor of the pipeline."""
        pipeline, filename = req.params["pipeline"], req.params["filename"]
        require(req.principal, Role.launcher, "cancel an upload", [pipeline])
        await api.services.run_io(_target, pipeline, filename)
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [pipeline], "files": [filename]}
        deleted: UploadDeleted = await api.services.run_io(store.cancel, pipeline, filename,
                                                           _authorize_cancel(req.principal, pipeline))
        return deleted

    return [
        Route("GET", "/api/uploads/{pipeline}/{filename}", upload_status, "Upload progress", Role.launcher,
              response=UploadStatus, statuses=(409, 503)),
        Route("PUT", "/api/uploads/{pipeline}/{filename}", upload_chunk, "Upload a chunk", Role.launcher,
              response=UploadStatus, raw_body=True, headers_in=("Content-Range",),
              statuses=(409, 413, 415, 503, 507)),
        Route("DELETE", "/api/uploads/{pipeline}/{filename}", cancel_upload, "Cancel a staged upload",
              Role.launcher, response=UploadDeleted, statuses=(404, 409, 503)),
    ]
