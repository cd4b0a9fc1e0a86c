"""The bad-row policy of a file stream: fail naming file and line, or skip and count."""

from __future__ import annotations

import logging
from pathlib import Path

from connectors.errors import SourceReadError

log = logging.getLogger(__name__)
LOGGED_PER_FILE = 10  # enough to diagnose, few enough not to flood the run log


class BadRows:
    def __init__(self, path: Path | str, policy: str, limit: int | None, *, log_skipped: bool = True) -> None:
        self.path = path  # as messages name it: a local path, or the URL of a remote object read from a copy
        self.policy = policy
        self.limit = limit
        self.log_skipped = log_skipped
        self.total = 0
        self._pending = 0

    def take(self) -> int:
        """Rows skipped since the last call, reported on the batch being emitted."""
        pending, self._pending = self._pending, 0
        return pending

    def bad(self, line: int, message: str) -> None:
        """Record a bad row at `line`; raises unless the policy is to skip (and the limit allows it)."""
        where = f"{self.path}:{line}"
        if self.policy != "skip":
            raise SourceReadError(f"{where}: {message} (set on_bad_row: skip to skip and count such rows)")
        self.total += 1
        self._pending += 1
        if self.limit is not None and self.total > self.limit:
            raise SourceReadError(f"{where}: {message}; more than max_bad_rows={self.limit} bad rows in {self.path}")
        if self.log_skipped and self.total <= LOGGED_PER_FILE:
            log.warning("skipped bad row %s: %s", where, message)
