"""One file of a location (local or remote), as listings, cursors and fingerprints see it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Entry:
    """One file of a location: `name` relative to the base (forward slashes), as state and cursors key it."""

    name: str
    size: int
    modified: dt.datetime  # timezone-aware UTC
    version: str = ""  # what else changes with the content (ETag, mtime in ns): part of the fingerprint

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def fingerprint(self) -> str:
        """What identifies one version of a file: a rewritten file (new size, mtime or ETag) counts as new."""
        return f"{self.size}:{self.version or self.modified.timestamp()}"
