"""Staged uploads on a local directory: one directory per upload under `<uploads root>/.staging/`.

Layout of one upload, `.staging/uploads/<pipeline>/<filename>/`:
  `meta.json`   who started it, the declared total, the final path (pinned when the upload starts)
  `data.part`   the bytes received so far, appended and fsynced chunk by chunk
  `commit.json` the finalization record: present from the moment every byte is in until the delivery is done
  `lock`        flock'd by whoever changes the upload (threads here, other processes on the same volume)
Delivered uploads leave a ledger entry `.staging/delivered/<id>.json` (user, path, size) so that a user's
quota counts their files still waiting in sensor directories.

The staging area lives under the uploads root, on the same filesystem as every sensor directory, so the
finished part is hard-linked into place: the sensor sees the whole file or nothing, and an existing file of
that name is never overwritten (a link refuses to). Finalization and crash recovery are in `deliver.py`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from aggregator.proxy.uploads.durable import read_json, write_json
from aggregator.proxy.uploads.limits import UploadLimits


class Meta(BaseModel):
    """What is known about a staged upload from its first chunk on."""

    id: str = Field(description="Unique id of this upload (names its ledger entry).")
    pipeline: str = Field(description="Pipeline whose sensor directory receives the file.")
    filename: str = Field(description="File name in that directory.")
    user: str = Field(description="Who started the upload; its bytes count against this user's quota.")
    total: int = Field(description="Declared size in bytes.")
    final: str = Field(description="Absolute path the file is delivered to.")
    started: float = Field(description="Unix time of the first chunk.")


@dataclass(frozen=True)
class Upload:
    """The paths of one staged upload."""

    dir: Path

    @property
    def meta(self) -> Path:
        return self.dir / "meta.json"

    @property
    def part(self) -> Path:
        return self.dir / "data.part"

    @property
    def commit(self) -> Path:
        return self.dir / "commit.json"

    @property
    def lock(self) -> Path:
        return self.dir / "lock"

    def read_meta(self) -> Meta | None:
        data = read_json(self.meta)
        return Meta.model_validate(data) if data is not None else None

    def received(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def last_activity(self) -> float:
        times = [p.stat().st_mtime for p in (self.meta, self.part) if p.exists()]
        return max(times, default=0.0)


class Staging:
    """Where uploads wait until they are whole; names are validated by the caller before anything here runs."""

    def __init__(self, uploads_root: Path, limits: UploadLimits) -> None:
        self.root = uploads_root
        self.limits = limits
        self.base = uploads_root / ".staging"
        self.delivered = self.base / "delivered"

    def upload(self, pipeline: str, filename: str) -> Upload:
        return Upload(self.base / "uploads" / pipeline / filename)

    def all_uploads(self) -> list[Upload]:
        area = self.base / "uploads"
        if not area.is_dir():
            return []
        return [Upload(d) for pipeline in sorted(area.iterdir()) if pipeline.is_dir()
                for d in sorted(pipeline.iterdir()) if d.is_dir()]

    def new_meta(self, pipeline: str, filename: str, user: str, total: int, final: Path) -> Meta:
        return Meta(id=uuid.uuid4().hex, pipeline=pipeline, filename=filename, user=user, total=total,
                    final=str(final), started=time.time())

    def write_meta(self, up: Upload, meta: Meta) -> None:
        write_json(up.meta, meta.model_dump())

    # ------------------------------------------------------------------------------------------ locks

    @contextmanager
    def locked(self, up: Upload, create: bool, wait: bool = True) -> Iterator[bool]:
        """Hold the upload's lock; yields False when there is no such upload (and `create` is False) or,
        with `wait=False`, when someone else holds it.

        The lock file is removed with the upload, so after getting the lock we check that the path still
        names the file we locked: if not, the upload was removed meanwhile and we start over."""
        while True:
            if create:
                up.dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(up.lock, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
            except FileNotFoundError:
                if create:
                    continue  # removed between mkdir and open
                yield False
                return
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    yield False
                    return
                try:
                    same = os.stat(up.lock).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield True
                    return
            finally:
                os.close(fd)
            if not create:
                yield False
                return

    @contextmanager
    def quota_lock(self) -> Iterator[None]:
        """Serializes admitting new uploads, so two starts cannot both fit under a quota meant for one."""
        self.base.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.base / "quota.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------- removal

    def remove(self, up: Upload) -> None:
        """Remove a staged upload (call with its lock held). Meta goes first: from then on the upload is not
        staged, whatever a crash leaves behind; the lock file goes last."""
        for path in (up.meta, up.commit, up.part, up.lock):
            path.unlink(missing_ok=True)
        for leftover in up.dir.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        try:
            up.dir.rmdir()
        except OSError as exc:  # another request already made it again
            if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT, errno.EEXIST):
                raise

    def expired(self, up: Upload) -> bool:
        return time.time() - up.last_activity() > self.limits.staged_ttl_s

    # --------------------------------------------------------------------------------------- usage

    def usage(self, user: str) -> tuple[int, int]:
        """(bytes held by `user`, bytes held under the uploads root by everyone).

        A staged upload counts with its declared total (it was admitted for that much); a delivered file
        counts for its uploader while it is still where it was delivered (a pipeline that moves or deletes
        its input gives the room back); the total counts every visible file under the root."""
        mine = staged_total = 0
        for up in self.all_uploads():
            meta = up.read_meta()
            if meta is None:
                continue
            staged_total += meta.total
            if meta.user == user:
                mine += meta.total
        if self.delivered.is_dir():
            for entry in self.delivered.glob("*.json"):
                record = read_json(entry)
                if record is None:
                    continue
                try:
                    present = os.stat(record["final"]).st_size == record["size"]
                except (FileNotFoundError, KeyError):
                    present = False
                if not present:
                    entry.unlink(missing_ok=True)  # consumed: the ledger forgets it
                elif record.get("user") == user:
                    mine += int(record["size"])
        visible = 0
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                try:
                    visible += os.stat(os.path.join(directory, name)).st_size
                except FileNotFoundError:
                    pass
        return mine, staged_total + visible

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free
