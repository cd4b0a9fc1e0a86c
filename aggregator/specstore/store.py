"""Read and write the spec store: snapshots at a revision, and compare-and-swap commits."""

from __future__ import annotations

import difflib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from aggregator.specstore.tables import files, revisions

SPEC_SUFFIXES = (".yaml", ".yml")


class StoreConflict(RuntimeError):
    """Another writer committed first: the revision this write was prepared against is no longer the head."""


class SpecPathError(ValueError):
    """A spec file path the store does not accept (absolute, `..`, not YAML)."""


def digest_of(texts: Mapping[str, str]) -> str:
    """sha256 of every (path, content): what a run's reconstruction verifies it loaded."""
    return hashlib.sha256(json.dumps(sorted(texts.items()), ensure_ascii=False).encode()).hexdigest()


def check_path(rel: str) -> str:
    """`rel` as the store keys it (relative, POSIX); raises SpecPathError naming the rule it breaks."""
    path = PurePosixPath(rel.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise SpecPathError(f"spec file {rel!r} must be a path relative to the specs directory, without '..'")
    if path.suffix not in SPEC_SUFFIXES:
        raise SpecPathError(f"spec file {rel!r} must end in .yaml or .yml")
    return str(path)


@dataclass(frozen=True)
class Snapshot:
    """Every spec file at one store revision (0: nothing stored yet)."""

    revision: int
    files: dict[str, str] = field(default_factory=dict)  # relative path -> content

    @property
    def digest(self) -> str:
        return digest_of(self.files)

    def texts(self, root: Path) -> dict[Path, str]:
        """The files as the loader takes them: absolute paths under `root`, which is where relative paths in
        a spec (a files connection's `base_dir`, a SQLite URL) resolve."""
        return {root / rel: content for rel, content in sorted(self.files.items())}


@dataclass(frozen=True)
class Revision:
    revision: int
    username: str
    ts: float
    action: str
    digest: str


def unified_diff(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """A unified diff of two sets of spec files (what `specs apply` prints, what history shows)."""
    out: list[str] = []
    for rel in sorted({*old, *new}):
        a, b = old.get(rel), new.get(rel)
        if a == b:
            continue
        out.extend(difflib.unified_diff((a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
                                        "/dev/null" if a is None else f"a/{rel}", "/dev/null" if b is None else f"b/{rel}"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


class SpecDb:
    """The spec store in one SQLAlchemy engine (the platform database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def head(self) -> int:
        with self.engine.connect() as conn:
            return _head(conn)

    def snapshot(self, revision: int | None = None) -> Snapshot:
        """The files at `revision` (default: the head). A revision past the head is an error, not the head."""
        with self.engine.connect() as conn:
            head = _head(conn)
            number = head if revision is None else revision
            if number > head:
                raise LookupError(f"spec store revision {number} does not exist (the newest is {head})")
            return Snapshot(number, _files_at(conn, number))

    def revision(self, number: int) -> Revision | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(revisions).where(revisions.c.revision == number)).mappings().first()
        return None if row is None else Revision(**row)

    def commit(self, changes: Mapping[str, str | None], expected: int, username: str, action: str,
               also: Callable[[Connection, int], None] | None = None) -> int:
        """Write `changes` (path -> content, None: delete) as revision `expected + 1`, in one transaction, only
        if the head is still `expected`; raises StoreConflict otherwise. `also` runs in the same transaction
        (a history row that must exist exactly when the files do)."""
        changes = {check_path(rel): content for rel, content in changes.items()}
        try:
            with self.engine.begin() as conn:
                if _head(conn) != expected:
                    raise StoreConflict(f"the spec store moved past revision {expected}")
                now = {**_files_at(conn, expected)}
                for rel, content in changes.items():
                    if content is None:
                        now.pop(rel, None)
                    else:
                        now[rel] = content
                number = expected + 1
                conn.execute(revisions.insert().values(revision=number, username=username, ts=time.time(),
                                                       action=action, digest=digest_of(now)))
                if changes:
                    conn.execute(files.insert(), [{"path": rel, "revision": number, "content": content}
                                                  for rel, content in sorted(changes.items())])
                if also is not None:
                    also(conn, number)
        except (IntegrityError, OperationalError) as exc:
            # The primary key on the revision refused a second writer (PostgreSQL), or SQLite refused a write
            # from a stale read snapshot ("database is locked"): either way someone else committed first.
            if isinstance(exc, OperationalError) and "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise StoreConflict(f"the spec store moved past revision {expected} ({type(exc).__name__})") from exc
        return number

    def replace_all(self, wanted: Mapping[str, str], username: str, action: str,
                    only: Callable[[str], bool] | None = None, attempts: int = 20) -> tuple[int | None, str]:
        """Make the store hold exactly `wanted` (among the paths `only` accepts): one revision, or none when
        nothing differs. Returns (new revision or None, unified diff of what changed)."""
        wanted = {check_path(rel): content for rel, content in wanted.items()}
        for _ in range(attempts):
            snap = self.snapshot()
            current = {rel: text for rel, text in snap.files.items() if only is None or only(rel)}
            changes: dict[str, str | None] = {rel: text for rel, text in wanted.items() if current.get(rel) != text}
            changes.update({rel: None for rel in current if rel not in wanted})
            if not changes:
                return None, ""
            try:
                number = self.commit(changes, snap.revision, username, action)
            except StoreConflict:
                time.sleep(0.05)
                continue
            return number, unified_diff(current, wanted)
        raise StoreConflict(f"the spec store kept changing during {attempts} attempts to apply; try again")


def _head(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(revisions.c.revision))).scalar() or 0)


def _files_at(conn: Connection, revision: int) -> dict[str, str]:
    last = (sa.select(files.c.path, sa.func.max(files.c.revision).label("revision"))
            .where(files.c.revision <= revision).group_by(files.c.path).subquery())
    rows = conn.execute(sa.select(files.c.path, files.c.content)
                        .join(last, sa.and_(files.c.path == last.c.path, files.c.revision == last.c.revision))
                        .where(files.c.content.is_not(None))).all()
    return {path: content for path, content in sorted(rows)}
