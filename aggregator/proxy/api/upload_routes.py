"""Resumable uploads into the directory a pipeline's file sensor watches.

`PUT /api/uploads/{pipeline}/{filename}` with `Content-Range: bytes <first>-<last>/<total>` appends one
chunk; `GET` on the same path says how many bytes arrived, so an interrupted upload resumes from there.
Chunks land in `AGGREGATOR_HOME/uploads/` (never where the sensor looks); the complete file is moved in
atomically, so the sensor never sees half a file. Names are one plain file name (no path, no leading dot),
the total is capped, and the first bytes must match what the extension claims.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class UploadStatus(BaseModel):
    """Where an upload stands."""

    filename: str = Field(description="File name in the sensor's directory.")
    received: int = Field(description="Bytes received so far; resume with Content-Range starting here.")
    total: int | None = Field(description="Declared total size (null before the first chunk).")
    complete: bool = Field(description="True once the file is in the sensor's directory.")


def sniff(filename: str, head: bytes) -> str | None:
    """Why the first bytes do not fit the extension, or None when they do."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext == "parquet":
        return None if head.startswith(b"PAR1") else "a .parquet file starts with PAR1"
    if ext in ("xlsx", "xlsm"):
        return None if head.startswith(b"PK\x03\x04") else "an Excel file is a ZIP archive (PK..)"
    if ext in ("csv", "tsv", "txt", "json", "jsonl", "ndjson"):
        if b"\x00" in head:
            return f"a .{ext} file is text; this one holds NUL bytes"
        if ext == "json" and head.lstrip()[:1] not in (b"{", b"[", b""):
            return "a .json file starts with { or ["
        return None
    return f"extension .{ext} is not accepted; allowed: csv, tsv, txt, json, jsonl, ndjson, parquet, xlsx"


def routes(api: ApiState, max_upload_bytes: int = 1 << 30) -> list[Route]:
    staging = api.platform.home / "uploads"

    def _target(pipeline: str, filename: str) -> tuple[Path, Path]:
        if not SAFE_NAME.match(filename) or ".." in filename:
            raise ApiError(400, f"file name {filename!r} is not allowed: one name of letters, digits, '_', '.', '-', "
                           "not starting with '.' (no paths)")
        try:
            specs = load_specs(api.platform.pipelines_dir, uploads_root=api.platform.uploads_root)
            spec = specs.pipeline(pipeline)
        except SpecErrors:
            raise ApiError(503, "the pipeline specs do not load; fix them with `aggregator validate`") from None
        except KeyError:
            raise ApiError(404, f"no pipeline {pipeline!r}") from None
        if spec.sensor is None:
            raise ApiError(409, f"pipeline {pipeline!r} has no file sensor, so no directory takes uploads")
        directory = Path(spec.sensor.directory).resolve()
        final = (directory / filename).resolve()
        if final.parent != directory:
            raise ApiError(400, f"file name {filename!r} leaves the sensor's directory")
        return final, staging / pipeline / f"{filename}.part"

    def _status(final: Path, part: Path) -> UploadStatus:
        total_file = part.with_suffix(".total")
        total = int(total_file.read_text()) if total_file.exists() else None
        if final.exists() and not part.exists():
            size = final.stat().st_size
            return UploadStatus(filename=final.name, received=size, total=size, complete=True)
        return UploadStatus(filename=final.name, received=part.stat().st_size if part.exists() else 0, total=total,
                            complete=False)

    def _append(final: Path, part: Path, first: int, last: int, total: int, chunk: bytes) -> UploadStatus:
        part.parent.mkdir(parents=True, exist_ok=True)
        # One writer per upload at a time (threads here, other replicas on a shared staging volume): two
        # clients sending the same chunk would otherwise both see the same offset and both append it.
        with open(part.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            return _append_locked(final, part, first, last, total, chunk)

    def _append_locked(final: Path, part: Path, first: int, last: int, total: int, chunk: bytes) -> UploadStatus:
        if final.exists() and not part.exists():
            raise ApiError(409, f"{final.name} is already in the sensor's directory; choose another name")
        part.parent.mkdir(parents=True, exist_ok=True)
        total_file = part.with_suffix(".total")
        if total_file.exists() and int(total_file.read_text()) != total:
            raise ApiError(409, f"this upload was started with total {total_file.read_text()} bytes, not {total}")
        received = part.stat().st_size if part.exists() else 0
        if first != received:
            raise ApiError(409, f"expected the chunk starting at byte {received}; resume from there "
                           "(GET this path for the offset)")
        if first == 0:
            problem = sniff(final.name, chunk[:512])
            if problem:
                raise ApiError(415, f"{final.name}: {problem}")
            total_file.write_text(str(total))
        with open(part, "ab") as out:
            out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if last + 1 == total:
            # Complete: copy next to the target under a hidden name, then rename, so the sensor sees it whole.
            tmp = final.parent / f".{final.name}.uploading"
            shutil.copyfile(part, tmp)
            os.replace(tmp, final)
            part.unlink()
            total_file.unlink()
        return _status(final, part)

    async def upload_status(req: ApiRequest) -> UploadStatus:
        """How many bytes of this upload arrived (resume from there)."""
        pipeline = req.params["pipeline"]
        require(req.principal, Role.launcher, "upload", [pipeline])
        final, part = await api.services.run_io(_target, pipeline, req.params["filename"])
        status: UploadStatus = await api.services.run_io(_status, final, part)
        return status

    async def upload_chunk(req: ApiRequest) -> UploadStatus:
        """Append one chunk (`Content-Range: bytes first-last/total`); the last one moves the file in place."""
        pipeline = req.params["pipeline"]
        require(req.principal, Role.launcher, "upload", [pipeline])
        found = _RANGE.match(req.header("content-range") or "")
        if found is None:
            raise ApiError(400, "send Content-Range: bytes <first>-<last>/<total> with each chunk")
        first, last, total = (int(g) for g in found.groups())
        if total > max_upload_bytes:
            raise ApiError(413, f"upload of {total} bytes is over the limit of {max_upload_bytes}")
        if last < first or last >= total or last - first + 1 != len(req.raw_body):
            raise ApiError(400, f"Content-Range {first}-{last}/{total} does not match the {len(req.raw_body)} "
                           "bytes sent")
        final, part = await api.services.run_io(_target, pipeline, req.params["filename"])
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"pipelines": [pipeline], "files": [final.name]}
        status: UploadStatus = await api.services.run_io(_append, final, part, first, last, total, req.raw_body)
        return status

    return [
        Route("GET", "/api/uploads/{pipeline}/{filename}", upload_status, "Upload progress", Role.launcher,
              response=UploadStatus, statuses=(409, 503)),
        Route("PUT", "/api/uploads/{pipeline}/{filename}", upload_chunk, "Upload a chunk", Role.launcher,
              response=UploadStatus, raw_body=True, headers_in=("Content-Range",), statuses=(409, 413, 415)),
    ]
