"""Pipeline specs as versioned resources, kept in the spec store (the platform database).

The store (aggregator/specstore) is what every component loads: this proxy replica and any other, the code
server, run workers and the worker. A write is validated and authorized against one store revision and
committed as the next one only if no other writer committed first (compare-and-swap on the revision, in the
same transaction as the history row), so a scope decision can never be taken on a world another replica
has changed meanwhile; a write that lost the race is prepared again on the new revision. Each accepted
write is also one row of `api_spec_versions` (who, when, content, diff), numbered per pipeline. Where this
process has a specs directory of its own, it is synced with the store first, and a write is written back to
its file (editor and git see it). See docs/api.md ("Where specs live").
"""

from __future__ import annotations

import difflib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.pipelines.declared import Impact, impact, load_world
from aggregator.pipelines.load import SpecError, load_specs
from aggregator.pipelines.validate import validate
from aggregator.proxy.api.errors import ApiError, Problem
from aggregator.settings import Settings
from aggregator.specstore import tables as spec_tables
from aggregator.specstore.current import current, local_directory
from aggregator.specstore.directory import DirectorySync
from aggregator.specstore.store import Snapshot, SpecDb, SpecPathError, StoreConflict, check_path

metadata = sa.MetaData()

versions = sa.Table(
    "api_spec_versions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("file", sa.String(500), nullable=False),  # relative to the specs directory
    sa.Column("content", sa.Text, nullable=True),  # NULL: the pipeline was deleted
    sa.Column("diff", sa.Text, nullable=False),
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("action", sa.String(20), nullable=False),  # create, update, delete, rollback
    sa.UniqueConstraint("pipeline", "version", name="uq_api_spec_versions_pipeline_version"),
)

# A write prepared on a revision another writer moved past is prepared again this many times before 412.
WRITE_ATTEMPTS = 20


def etag_of(content: str | None) -> str:
    """A strong ETag of the file's bytes: what If-Match is compared against."""
    return '"' + hashlib.sha256((content or "").encode()).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Located:
    """Where a pipeline is declared now."""

    name: str
    file: Path  # absolute
    rel: str
    content: str
    pipelines_in_file: tuple[str, ...]


@dataclass(frozen=True)
class Version:
    pipeline: str
    version: int
    file: str
    content: str | None
    diff: str
    username: str
    ts: float
    action: str


def _diff(old: str | None, new: str | None, rel: str) -> str:
    return "".join(difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}"))


class SpecStore:
    def __init__(self, engine: Engine, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.root = settings.pipelines_dir
        self.environ = environ
        self.db = SpecDb(engine)
        # One writer at a time in this process (fewer wasted attempts); across replicas the store's
        # compare-and-swap on the revision decides.
        self._lock = threading.Lock()
        metadata.create_all(engine, checkfirst=True)
        spec_tables.metadata.create_all(engine, checkfirst=True)

    # ------------------------------------------------------------------------------------------ reading

    def snapshot(self) -> Snapshot:
        """The store's newest revision (this process's own specs directory synced into it first)."""
        return current(self.settings, db=self.db)

    def texts(self, snap: Snapshot | None = None) -> dict[Path, str]:
        return (snap or self.snapshot()).texts(self.root)

    def _declared(self, snap: Snapshot) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Pipeline name -> (file, every pipeline that file declares), as the loader reads the specs: template
        instances count as the pipelines they make; a broken file elsewhere does not hide the rest."""
        found: dict[str, tuple[str, tuple[str, ...]]] = {}
        for path, declared in load_world(self.root, self.texts(snap)).files.items():
            for name in declared.pipelines:
                found.setdefault(name, (self._rel_of(path), declared.pipelines))
        return found

    def _rel_of(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def list_all(self) -> list[Located]:
        snap = self.snapshot()
        return [self._located(snap, name, rel, names) for name, (rel, names) in sorted(self._declared(snap).items())]

    def find(self, name: str) -> Located | None:
        snap = self.snapshot()
        found = self._declared(snap).get(name)
        return None if found is None else self._located(snap, name, *found)

    def _located(self, snap: Snapshot, name: str, rel: str, names: tuple[str, ...]) -> Located:
        return Located(name, self.root / rel, rel, snap.files[rel], names)

    def impact(self, rel: str, content: str | None, snap: Snapshot | None = None) -> Impact:
        """What writing `content` to `rel` would change (pipelines, connections, cross-pipeline reads)."""
        return impact(self.root, self._path(rel), content, self.texts(snap))

    def _path(self, rel: str) -> Path:
        try:
            return self.root / check_path(rel)
        except SpecPathError as exc:
            raise ApiError(400, str(exc)) from None

    def history(self, name: str) -> list[Version]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(versions).where(versions.c.pipeline == name)
                                .order_by(versions.c.version.desc())).mappings().all()
        return [Version(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def version(self, name: str, number: int) -> Version | None:
        return next((v for v in self.history(name) if v.version == number), None)

    def declared_by(self, rel: str, content: str, snap: Snapshot | None = None) -> tuple[str, ...]:
        """The pipelines `content` would declare as `rel` (template instances made with the store's
        templates), by the loader."""
        path = self._path(rel)
        world = load_world(self.root, {**self.texts(snap), path: content})
        return world.files[path].pipelines if path in world.files else ()

    # ------------------------------------------------------------------------------------------ writing

    def check(self, rel: str, content: str | None, snap: Snapshot | None = None) -> list[Problem]:
        """Validate the specs as they would be after the write, exactly as `aggregator validate` does: the
        store's files with this one replaced, relative paths resolved in the specs directory."""
        path = self._path(rel)
        texts = self.texts(snap)
        if content is None:
            texts.pop(path, None)
        else:
            texts[path] = content
        report = validate(self.root, self.settings, self.environ, texts=texts)
        return [self._problem(e) for e in report.errors]

    def _problem(self, error: SpecError) -> Problem:
        try:
            rel = Path(error.file).relative_to(self.root).as_posix()
        except ValueError:
            rel = str(error.file)
        where = f"{rel}:{error.line}" if error.line else rel
        text = f"{where}: {error.field}: {error.message}" if error.field else f"{where}: {error.message}"
        return Problem(file=rel, line=error.line, field=error.field, message=error.message, text=text)

    def write(self, name: str, rel: str, content: str | None, user: str, action: str,
              if_match: str | None, declares: str = "pipeline",
              authorize: Callable[[Impact], None] | None = None) -> Version:
        """Validate, authorize and store as one compare-and-swap on the store revision. `name` is the
        pipeline's name, or `connection:<name>` for a connection file (`declares="connection"`).
        `authorize` is shown what the write changes, as the loader reads it, before anything is validated or
        stored; it raises (403) to refuse."""
        rel = self._rel_of(self._path(rel))
        with self._lock:
            for _ in range(WRITE_ATTEMPTS):
                snap = self.snapshot()
                old = snap.files.get(rel)
                if if_match is not None and if_match != "*" and if_match != etag_of(old):
                    raise ApiError(412, f"{declares} {name!r} changed since you read it (ETag {etag_of(old)}); "
                                   "GET it again and reapply your change")
                if authorize is not None:
                    authorize(self.impact(rel, content, snap))
                problems = self.check(rel, content, snap)
                if problems:
                    raise ApiError(422, f"{len(problems)} problem(s) in the spec; nothing was stored",
                                   problems=problems)
                if declares == "pipeline" and content is not None and name not in self.declared_by(rel, content, snap):
                    raise ApiError(422, f"the spec must declare pipeline {name!r} under `pipelines:`")
                rows: list[Version] = []

                def history(conn: Connection, _revision: int, old: str | None = old, rows: list[Version] = rows) -> None:
                    latest = conn.execute(sa.select(sa.func.max(versions.c.version))
                                          .where(versions.c.pipeline == name)).scalar() or 0
                    row = Version(name, latest + 1, rel, content, _diff(old, content, rel), user, time.time(), action)
                    conn.execute(versions.insert().values(**row.__dict__))
                    rows.append(row)

                try:
                    # Only if the store is still at the revision everything above was decided on.
                    self.db.commit({rel: content}, snap.revision, user, f"api:{action}", also=history)
                except StoreConflict:
                    continue
                self._write_back(user)
                return rows[0]
        raise ApiError(412, f"{declares} {name!r} could not be stored: the specs kept changing while it was "
                       "validated; GET it again and reapply your change")

    def _write_back(self, user: str) -> None:
        """This process's own specs directory gets the write too (editor and git see it)."""
        root = local_directory(self.settings)
        if root is not None and root.is_dir() and os.access(root, os.W_OK):
            DirectorySync(self.db, root, self.settings.home).sync(user)


__all__ = ["Located", "SpecStore", "Version", "etag_of", "load_specs"]
