"""`aggregator dev` and the spec store: the directory applied on start, saved files picked up while running.

On start the specs directory is applied into the store (the store then holds exactly the directory); with
no AGGREGATOR_PIPELINES the bundled samples seed an empty store once (a later start keeps what the API
wrote). While the platform runs, a saved spec file is synced into the store and the code location reloaded,
and so is a revision written by anything that does not reload itself (`aggregator specs apply`, a replica
without a webserver); API writes reload the location themselves.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from pathlib import Path

import httpx

from aggregator.settings import Settings
from aggregator.specstore.current import local_directory, open_spec_db, seed_if_empty
from aggregator.specstore.directory import DirectorySync
from aggregator.specstore.store import SPEC_SUFFIXES, StoreConflict

log = logging.getLogger(__name__)
POLL_EVERY_S = 1.0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "dev"


def apply_directory(settings: Settings) -> str:
    """Apply the specs directory into the store; returns a line saying what happened."""
    db = open_spec_db(settings)
    root = local_directory(settings)
    if root is None:
        seed_if_empty(db, settings.pipelines_dir, _user())
        return f"specs: the spec store (revision {db.head()}; seeded from the bundled samples when empty)"
    if not root.is_dir():
        return f"specs: {root} is not a directory; the code location reports it"
    number = DirectorySync(db, root, settings.home).apply(_user(), "dev")
    state = f"applied as revision {number}" if number else f"unchanged (revision {db.head()})"
    return f"specs: {root} -> spec store, {state}"


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detection: name, mtime and size of every spec file."""
    found = []
    for suffix in SPEC_SUFFIXES:
        for path in root.rglob(f"*{suffix}"):
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))


class SpecWatcher:
    """Polled from the supervisor's loop: sync saved files, reload when the store moved."""

    def __init__(self, settings: Settings, graphql_url: str, say: Callable[[str], None]) -> None:
        self.settings, self.graphql_url, self.say = settings, graphql_url, say
        self.db = open_spec_db(settings)
        self.root = local_directory(settings)
        self.signature = _signature(self.root) if self.root is not None and self.root.is_dir() else ()
        self.seen = self.db.head()
        self.next_at = 0.0

    def poll(self, now: float | None = None) -> None:
        import time

        now = time.monotonic() if now is None else now
        if now < self.next_at:
            return
        self.next_at = now + POLL_EVERY_S
        try:
            if self.root is not None and self.root.is_dir():
                signature = _signature(self.root)
                if signature != self.signature:
                    self.signature = signature
                    DirectorySync(self.db, self.root, self.settings.home).sync(_user())
            head = self.db.head()
            if head == self.seen:
                return
            actions = [r.action for n in range(self.seen + 1, head + 1) if (r := self.db.revision(n)) is not None]
            self.seen = head
            if any(not a.startswith("api:") for a in actions):
                self._reload(head)
        except (StoreConflict, OSError, httpx.HTTPError) as exc:
            log.warning("spec watcher: %s", exc)

    def _reload(self, head: int) -> None:
        from aggregator.proxy.api.reload import LOCATIONS, RELOAD

        with httpx.Client(timeout=httpx.Timeout(10.0, read=300.0)) as client:
            body = client.post(self.graphql_url, json={"query": LOCATIONS}).json()
            for entry in body["data"]["workspaceOrError"]["locationEntries"]:
                client.post(self.graphql_url, json={"query": RELOAD, "variables": {"name": entry["name"]}})
        self.say(f"specs: revision {head} stored; code location reloaded")
