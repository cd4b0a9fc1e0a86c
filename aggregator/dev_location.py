"""Is the code location loaded in the private webserver? `aggregator dev` says "up" only once it is: the
webserver answers before the location has loaded, and a webserver (re)started while the code server was not
answering holds it as "unreachable" (Dagster's watch thread recovers that within ~10 s; a reload sent here as soon
as the code server listens does it at once).
A location that fails for another reason (a broken definitions module) counts as settled: the UI shows the
error, and waiting would never end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RELOAD = """mutation AggregatorDevReload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename } }"""
RELOAD_EVERY_S = 2.0
# What a location whose code server is not (yet) answering says; anything else is a real load error.
TRANSIENT = ("UNAVAILABLE", "Could not reach user code server", "unreachable", "Connection refused",
             "DEADLINE_EXCEEDED", "still loading", "starting up")


@dataclass
class LocationWatch:
    """Polled by the supervisor's wait loop: `settled(code_listening)` is True once the location is loaded
    (or failed for good) in the webserver at `url`."""

    url: str
    name: str
    _reloaded_at: float = 0.0

    def settled(self, code_listening: bool) -> bool:
        entries = self._entries()
        if entries is None:
            return False  # the webserver does not answer yet
        entry = next((e for e in entries if e.get("name") == self.name), None)
        if entry is None or entry.get("loadStatus") != "LOADED":
            return False
        error = entry.get("locationOrLoadError") or {}
        if error.get("__typename") != "PythonError":
            return True
        if any(t in (error.get("message") or "") for t in TRANSIENT):
            if code_listening and time.monotonic() - self._reloaded_at >= RELOAD_EVERY_S:
                self._reload()
            return False
        return True

    def _entries(self) -> list[dict[str, Any]] | None:
        try:
            body = requests.post(f"{self.url}/graphql", json={"query": STATUS}, timeout=10).json()
            return list(body["data"]["workspaceOrError"]["locationEntries"])
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None

    def _reload(self) -> None:
        self._reloaded_at = time.monotonic()
        try:
            # Answered once the reload is done (or failed): the next poll reads the outcome.
            requests.post(f"{self.url}/graphql", json={"query": RELOAD, "variables": {"name": self.name}},
                          timeout=120)
        except requests.RequestException:
            pass
