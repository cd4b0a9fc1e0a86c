"""Ctrl-C in `aggregator dev`: cancel in-flight runs, stop the platform, and leave no process behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

IN_FLIGHT = ["STARTING", "STARTED", "CANCELING"]
CANCEL_GRACE_S = 30  # a step that ignores SIGTERM this long is marked canceled and its processes killed

_RUNS = """query InFlight($statuses: [RunStatus!]) {
  runsOrError(filter: {statuses: $statuses}) { ... on Runs { results { runId status jobName } } }
}"""
_TERMINATE = """mutation Cancel($runIds: [String!]!, $policy: TerminateRunPolicy) {
  terminateRuns(runIds: $runIds, terminatePolicy: $policy) { __typename }
}"""

Say = Callable[[str], None]


def _graphql(upstream: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{upstream}/graphql", json={"query": query, "variables": variables}, timeout=10)
    response.raise_for_status()
    return dict(response.json().get("data") or {})


def in_flight(upstream: str) -> list[dict[str, str]]:
    data = _graphql(upstream, _RUNS, {"statuses": IN_FLIGHT})
    runs = data.get("runsOrError")
    return list(runs.get("results", [])) if isinstance(runs, dict) else []


def cancel_runs(upstream: str, say: Say, grace_s: float = CANCEL_GRACE_S) -> list[str]:
    """Terminate every in-flight run through the (private) webserver and wait, bounded, until Dagster has
    marked each one CANCELED; what is still running then is marked canceled immediately."""
    try:
        runs = in_flight(upstream)
    except (requests.RequestException, ValueError) as exc:
        # The exception's text holds the webserver's private address, which is never shown (it bypasses sign-in).
        reason = "the webserver is not answering" if isinstance(exc, requests.ConnectionError) else type(exc).__name__
        say(f"could not list in-flight runs ({reason}); their processes will be stopped")
        return []
    if not runs:
        return []
    ids = [r["runId"] for r in runs]
    names = ", ".join(f"{r['jobName']} {r['runId'][:8]}" for r in runs)
    say(f"canceling {len(ids)} in-flight run(s): {names}")
    try:
        _graphql(upstream, _TERMINATE, {"runIds": ids, "policy": "SAFE_TERMINATE"})
        deadline = time.monotonic() + grace_s
        last_said = 0.0
        while (left := [r for r in in_flight(upstream) if r["runId"] in ids]) and time.monotonic() < deadline:
            if time.monotonic() - last_said >= 5:
                say(f"waiting for {len(left)} run(s) to stop (at most {round(deadline - time.monotonic())} s more)…")
                last_said = time.monotonic()
            time.sleep(0.5)
        if left:
            say(f"{len(left)} run(s) did not stop in {grace_s:.0f} s: marking them canceled and killing them")
            _graphql(upstream, _TERMINATE, {"runIds": [r["runId"] for r in left],
                                            "policy": "MARK_AS_CANCELED_IMMEDIATELY"})
    except (requests.RequestException, ValueError) as exc:
        say(f"canceling runs failed ({exc}); their processes will be stopped")
    return ids


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc (empty where there is none)."""
    table: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 2 (the command) may hold spaces and parentheses; the parent PID follows the last ')'.
        table[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return table


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, however deep (code servers, run workers, step processes)."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, parent in parents.items() if parent in frontier and p not in found}
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    still: set[int] = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        # A zombie has exited; only its parent's wait() is missing.
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except (OSError, IndexError):
            pass
        still.add(pid)
    return still


def kill_leftovers(pids: set[int], say: Say) -> None:
    """SIGKILL whatever of `pids` (and their own children) outlived the graceful stop."""
    left = alive(pids | {d for p in alive(pids) for d in descendants(p)})
    if not left:
        return
    say(f"killing {len(left)} process(es) that did not stop: {', '.join(map(str, sorted(left)))}")
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
