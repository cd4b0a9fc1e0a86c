"""Pipeline specs as versioned resources: files in the specs directory, history in the platform database.

The specs directory stays the one thing the code location reads (as for hand-edited specs), so `aggregator
validate`, git and the API all see the same files. Each accepted write is one row of `api_spec_versions`
(who, when, content, diff), numbered per pipeline; the unique (pipeline, version) key is what makes
concurrent writers safe across replicas: of two writers that read the same version, only one can insert
the next, the other gets 412. The file is replaced atomically (write to a temporary file, fsync, rename)
inside that transaction, after the insert succeeded. See docs/api.md ("Where specs live").
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from aggregator.pipelines.declared import Impact, current_texts, declarations, impact, load_world
from aggregator.pipelines.load import SpecError, load_specs
from aggregator.pipelines.validate import validate
from aggregator.proxy.api.errors import ApiError, Problem
from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings

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


def _atomic_write(path: Path, content: str) -> None:
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


def _diff(old: str | None, new: str | None, rel: str) -> str:
    return "".join(difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                        f"a/{rel}", f"b/{rel}"))


class SpecStore:
    def __init__(self, engine: Engine, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.root = settings.pipelines_dir
        self.environ = environ
        # One writer at a time in this process; across replicas the unique version key decides.
        self._lock = threading.Lock()
        metadata.create_all(engine, checkfirst=True)

    # ------------------------------------------------------------------------------------------ reading

    def _declared(self) -> dict[str, tuple[Path, tuple[str, ...]]]:
        """Pipeline name -> (file, every pipeline that file declares), as the loader reads the specs: template
        instances count as the pipelines they make; a broken file elsewhere does not hide the rest."""
        found: dict[str, tuple[Path, tuple[str, ...]]] = {}
        if not self.root.is_dir():
            return found
        for path, declared in declarations(self.root).items():
            for name in declared.pipelines:
                found.setdefault(name, (path, declared.pipelines))
        return found

    def list_all(self) -> list[Located]:
        return [self._located(name, path, names) for name, (path, names) in sorted(self._declared().items())]

    def find(self, name: str) -> Located | None:
        found = self._declared().get(name)
        return None if found is None else self._located(name, *found)

    def _located(self, name: str, path: Path, names: tuple[str, ...]) -> Located:
        content = path.read_text(encoding="utf-8")
        return Located(name, path, str(path.relative_to(self.root)), content, names)

    def impact(self, rel: str, content: str | None) -> Impact:
        """What writing `content` to `rel` would change (pipelines, connections, cross-pipeline reads)."""
        return impact(self.root, self._path(rel), content)

    def _path(self, rel: str) -> Path:
        path = (self.root / rel).resolve()
        if self.root.resolve() not in path.parents:
            raise ApiError(400, f"spec file {rel!r} is outside the specs directory")
        return path

    def history(self, name: str) -> list[Version]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(versions).where(versions.c.pipeline == name)
                                .order_by(versions.c.version.desc())).mappings().all()
        return [Version(**{k: v for k, v in r.items() if k != "id"}) for r in rows]

    def version(self, name: str, number: int) -> Version | None:
        return next((v for v in self.history(name) if v.version == number), None)

    def declared_by(self, rel: str, content: str) -> tuple[str, ...]:
        """The pipelines `content` would declare as `rel` (template instances made with the directory's
        templates), by the loader."""
        texts = current_texts(self.root)
        path = next((p for p in texts if p.resolve() == self._path(rel)), self._path(rel))
        world = load_world(self.root, {**texts, path: content})
        return world.files[path].pipelines if path in world.files else ()

    # ------------------------------------------------------------------------------------------ writing

    def check(self, rel: str, content: str | None) -> list[Problem]:
        """Validate the specs directory as it would be after the write, exactly as `aggregator validate`
        does, in a scratch copy: nothing is stored when a problem is found."""
        with tempfile.TemporaryDirectory(prefix="aggregator-api-") as scratch:
            copy = Path(scratch) / "specs"
            _mirror(self.root, copy)
            target = copy / rel
            if copy.resolve() not in target.resolve().parents:
                raise ApiError(400, f"spec file {rel!r} is outside the specs directory")
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            report = validate(copy, self.settings, self.environ)
            return [self._problem(e, copy) for e in report.errors]

    def _problem(self, error: SpecError, copy: Path) -> Problem:
        try:
            rel = str(Path(error.file).resolve().relative_to(copy.resolve()))
        except ValueError:
            rel = str(error.file)
        where = f"{rel}:{error.line}" if error.line else rel
        text = f"{where}: {error.field}: {error.message}" if error.field else f"{where}: {error.message}"
        return Problem(file=rel, line=error.line, field=error.field, message=error.message, text=text)

    def write(self, name: str, rel: str, content: str | None, user: str, action: str,
              if_match: str | None, declares: str = "pipeline",
              authorize: Callable[[Impact], None] | None = None) -> Version:
        """Validate, then store: history row first (the concurrency guard), then the file. `name` is the
        pipeline's name, or `connection:<name>` for a connection file (`declares="connection"`).
        `authorize` is shown what the write changes, as the loader reads it, before anything is validated or
        stored; it raises (403) to refuse."""
        if self.root.resolve() == EXAMPLE_PIPELINES_DIR.resolve():
            # The samples ship inside the package: writing there would edit the installation (or the repo).
            raise ApiError(409, "the specs directory is the bundled samples; set AGGREGATOR_PIPELINES to a "
                           "directory of your own (copy the samples there) to change specs through the API")
        path = self._path(rel)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if if_match is not None and if_match != "*" and if_match != etag_of(old):
            raise ApiError(412, f"{declares} {name!r} changed since you read it (ETag {etag_of(old)}); "
                           "GET it again and reapply your change")
        if authorize is not None:
            authorize(self.impact(rel, content))
        problems = self.check(rel, content)
        if problems:
            raise ApiError(422, f"{len(problems)} problem(s) in the spec; nothing was stored", problems=problems)
        if authorize is not None:
            # Again, now that the write validated: a template another writer added meanwhile makes an
            # instance here that the first look could not expand (it counted as no pipeline).
            authorize(self.impact(rel, content))
        if declares == "pipeline" and content is not None and name not in self.declared_by(rel, content):
            raise ApiError(422, f"the spec must declare pipeline {name!r} under `pipelines:`")
        with self._lock, self.engine.begin() as conn:
            latest = conn.execute(sa.select(sa.func.max(versions.c.version))
                                  .where(versions.c.pipeline == name)).scalar() or 0
            row = Version(name, latest + 1, rel, content, _diff(old, content, rel), user, time.time(), action)
            try:
                conn.execute(versions.insert().values(**row.__dict__))
            except (IntegrityError, OperationalError):
                raise ApiError(412, f"{declares} {name!r} was changed by someone else at the same time; "
                               "GET it again and reapply your change") from None
            # Re-read under the new row: a writer that committed between our read and our insert changed it.
            now = path.read_text(encoding="utf-8") if path.exists() else None
            if now != old:
                raise ApiError(412, f"{declares} {name!r} changed while this write was validated; GET it again")
            if content is None:
                path.unlink(missing_ok=True)
            else:
                _atomic_write(path, content)
        return row


def _mirror(src: Path, dst: Path) -> None:
    """Spec files copied (they change), other files linked (data a spec points at). Directories are always
    made anew, never linked: a linked directory would let the candidate file be written through the link
    into the real specs directory before it was validated."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.is_dir():
        return
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink():
            _mirror(entry, target)
        elif entry.suffix in (".yaml", ".yml"):
            shutil.copyfile(entry, target)
        else:
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


__all__ = ["Located", "SpecStore", "Version", "etag_of", "load_specs"]
