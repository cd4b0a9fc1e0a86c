"""A specs directory on disk and the store: applied into it, and kept in step with it.

`aggregator dev` applies its directory on start (the store then holds exactly the directory), and every
process that has a writable specs directory of its own syncs it before it reads the store: a file saved in
an editor becomes a store revision, and a revision written elsewhere (the API of another replica) is written
back to the file, so editor, git and store agree. The sync is three-way against what this directory last
synced (a small record under AGGREGATOR_HOME, a cache): a side that changed wins; when both changed the
file on disk wins (the most recent intent on a developer's machine) and the store keeps the other in history.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator.specstore.store import SPEC_SUFFIXES, SpecDb, StoreConflict

log = logging.getLogger(__name__)


def read_directory(root: Path) -> dict[str, str]:
    """Every spec file under `root` (recursively, hidden directories skipped) by relative POSIX path."""
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for path in sorted(p for suffix in SPEC_SUFFIXES for p in root.rglob(f"*{suffix}")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        try:
            found[rel.as_posix()] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            found[rel.as_posix()] = ""  # the loader reports it as the empty/unreadable file it is
    return found


def write_file(root: Path, rel: str, content: str | None) -> None:
    """Replace (or delete) one spec file atomically: temporary file, fsync, rename."""
    path = root / rel
    if content is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DirectorySync:
    """One specs directory kept in step with the store; `home` holds the record of the last sync."""

    def __init__(self, db: SpecDb, root: Path, home: Path) -> None:
        self.db, self.root = db, root.resolve()
        key = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        self.record = home / "spec_sync" / f"{key}.json"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        """The record of the last sync (path -> sha256), under an exclusive lock shared by every process on
        this machine (code server, proxy, worker of one `aggregator dev`)."""
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with open(self.record.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                base: dict[str, str] = json.loads(self.record.read_text()) if self.record.exists() else {}
            except ValueError:
                base = {}
            yield base
            tmp = self.record.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(base, sort_keys=True))
            tmp.replace(self.record)

    def apply(self, username: str, action: str = "directory") -> int | None:
        """Make the store hold exactly this directory (what `aggregator dev` does on start)."""
        with self._locked() as base:
            disk = read_directory(self.root)
            number, _ = self.db.replace_all(disk, username, action)
            base.clear()
            base.update({rel: _hash(text) for rel, text in disk.items()})
            return number

    def sync(self, username: str, writable: bool = True) -> int | None:
        """Three-way: files changed on disk since the last sync go into the store (one revision); files the
        store changed meanwhile are written back when `writable`. Returns the new revision, if any."""
        with self._locked() as base:
            for _ in range(20):
                disk = read_directory(self.root)
                snap = self.db.snapshot()
                to_store: dict[str, str | None] = {}
                to_disk: dict[str, str | None] = {}
                agreed: dict[str, str | None] = {}  # rel -> what both sides hold after this sync
                for rel in sorted({*disk, *snap.files, *base}):
                    on_disk, stored, last = disk.get(rel), snap.files.get(rel), base.get(rel)
                    if on_disk == stored:
                        agreed[rel] = on_disk
                    elif (None if on_disk is None else _hash(on_disk)) != last:
                        to_store[rel] = agreed[rel] = on_disk
                    elif writable:
                        to_disk[rel] = agreed[rel] = stored
                number = None
                if to_store:
                    try:
                        number = self.db.commit(to_store, snap.revision, username, "directory")
                    except StoreConflict:
                        continue
                    log.info("specs directory %s: %d file(s) stored as revision %d", self.root, len(to_store), number)
                for rel, content in to_disk.items():
                    write_file(self.root, rel, content)
                for rel, content in agreed.items():
                    if content is None:
                        base.pop(rel, None)
                    else:
                        base[rel] = _hash(content)
                return number
            raise StoreConflict("the spec store kept changing while the specs directory was synced; try again")
