"""Where a files connection's files live: a local directory or an object store / SFTP server through fsspec.

Both kinds answer the same three questions, so the resource, the readers and the incremental rules are the
same code for every location:

* `entries(pattern)`: the files a glob matches, each with its name relative to the base, size and
  modification time (the fingerprint and the cursors are derived from those);
* `local_path(entry)`: a local file with the entry's bytes for the readers. Local files are read in place;
  remote objects are downloaded to a private temporary file first, so the CSV, JSON Lines, Parquet and Excel
  readers (Arrow's C++ parsers, openpyxl) run unchanged at local-disk speed, and bad-row messages name the
  object's URL, never the temporary path;
* `check()`: a one-line proof that the location is reachable and readable.

Remote locations are `s3://bucket/prefix`, `gs://` (`gcs://`), `az://` (`abfs://`) and `sftp://user@host/path`,
opened by fsspec's implementation of the scheme with the connection's `storage_options` (credentials as
`{env: NAME}`). Their endpoint must be one the platform lets connectors reach (connectors/egress.py): the
host of `endpoint_url` / the SFTP server / the cloud's default endpoint, every address it resolves to.
Credentials never appear in errors: every message from the storage library goes through `mask`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from connectors.egress import DATA_ROOTS_ENV, EgressError, check_path, data_roots
from connectors.errors import ConnectorConfigError
from connectors.files.entry import Entry
from connectors.files.remote import REMOTE_SCHEMES, RemoteLocation, is_remote


class Location(Protocol):
    @property
    def display(self) -> str:
        """The base as it may be shown (no credentials)."""
        ...

    def entries(self, pattern: str) -> list[Entry]: ...

    def all_entries(self) -> list[Entry]: ...

    def shown(self, entry: Entry) -> str: ...

    def local_path(self, entry: Entry) -> AbstractContextManager[Path]: ...

    def check(self) -> str: ...


def check_pattern(pattern: str) -> None:
    """Stream paths are relative to the base and stay inside it, whatever the location."""
    parts = PurePosixPath(pattern).parts
    if pattern.startswith(("/", "\\")) or Path(pattern).is_absolute() or ".." in parts or "://" in pattern:
        raise ConnectorConfigError(f"file stream path {pattern!r} must be relative to base_dir and stay inside it")


# --- local directories ---------------------------------------------------------------------------------------


class LocalLocation:
    """A directory under the platform's data roots."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir

    @property
    def root(self) -> Path:
        # Symlinks resolved before the check: base_dir may not lead out of the data roots by a link.
        return check_path(self.base_dir, "base_dir")

    @property
    def display(self) -> str:
        return str(self.root)

    def _inside_roots(self, paths: list[Path], root: Path) -> list[Path]:
        """`paths` whose real location is still under a data root; a file linking out is refused by name
        relative to base_dir, never by where it points."""
        roots = data_roots()
        for path in paths:
            real = Path(os.path.realpath(path))
            if not any(real == r or real.is_relative_to(r) for r in roots):
                raise EgressError(f"base_dir: {path.relative_to(root)} links outside the platform's data roots "
                                  f"({DATA_ROOTS_ENV}); connectors may read files only under them")
        return paths

    def _entries(self, paths: list[Path], root: Path) -> list[Entry]:
        out = []
        for path in self._inside_roots(paths, root):
            stat = path.stat()
            out.append(Entry(name=path.relative_to(root).as_posix(), size=stat.st_size,
                             modified=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC),
                             version=str(stat.st_mtime_ns)))
        return out

    def entries(self, pattern: str) -> list[Entry]:
        root = self.root
        return self._entries(sorted(p for p in root.glob(pattern) if p.is_file()), root)

    def all_entries(self) -> list[Entry]:
        root = self.root
        return self._entries(sorted(p for p in root.rglob("*") if p.is_file()), root)

    def shown(self, entry: Entry) -> str:
        return str(self.root / entry.name)

    @contextmanager
    def local_path(self, entry: Entry) -> Iterator[Path]:
        yield self.root / entry.name

    def check(self) -> str:
        root = self.root
        if not root.is_dir():
            raise ConnectorConfigError(f"base_dir {root} does not exist or is not a directory")
        count = sum(1 for p in root.rglob("*") if p.is_file())
        return f"{root}: readable, {count} files"


def open_location(base_dir: str, storage_options: dict[str, Any]) -> Location:
    """The location a connection's `base_dir` names."""
    if is_remote(base_dir):
        return RemoteLocation(base_dir, storage_options)
    if "://" in base_dir:
        scheme = base_dir.partition("://")[0]
        raise ConnectorConfigError(f"base_dir: scheme {scheme}:// is not supported; use a local directory or one "
                                   f"of {', '.join(s + '://' for s in REMOTE_SCHEMES)}")
    if storage_options:
        raise ConnectorConfigError("storage_options apply to object storage and SFTP locations (s3://, gs://, "
                                   "az://, sftp://), not to a local base_dir")
    return LocalLocation(base_dir)
