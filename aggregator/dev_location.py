"""Is the code location loaded in the private webserver? `aggregator dev` says "up" only once it is: the
webserver starts together with the code server (its import overlaps the code loading), so it first holds the
location as "unreachable". Dagster's gRPC watch thread polls the server every second and *refreshes* the
location (fetches the loaded definitions, no restart) as soon as the code server answers. A reload
(`reloadRepositoryLocation`) would instead make the code server start a new loader process and load every
pipeline a second time (measured: +5-8 s of start-up), so it is only a last resort when the location still
says unreachable long after the code server listens.
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
# Dagster's watch thread refreshes within ~1 s of the server answering, and retries an unreachable location
# every 10 s; only past both (a loaded machine) is the costly reload worth it.
RELOAD_AFTER_S = 30.0
# What a location whose code server is not (yet) answering says; anything else is a real load error.
TRANSIENT = ("UNAVAILABLE", "Could not reach user code server", "unreachable", "Connection refused",
             "DEADLINE_EXCEEDED", "still loading", "starting up")


@dataclass
class LocationWatch:
    """Polled by the supervisor's wait loop: `settled(code_listening)` is True once the location is loaded
    (or failed for good) in the webserver at `url`."""

    url: str
    name: str
    _listening_since: float | None = None
    _reloaded_at: float | None = None

    def settled(self, code_listening: bool) -> bool:
        if not code_listening:
            # The code server listens only once it has loaded (or failed to load) the code: before that the
            # location cannot be settled, and asking the webserver would only cost it CPU.
            self._listening_since = None
            return False
        now = time.monotonic()
        if self._listening_since is None:
            self._listening_since = now
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
            last = self._listening_since if self._reloaded_at is None else self._reloaded_at
            if now - last >= RELOAD_AFTER_S:
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
