"""The start-up of `aggregator dev`: which children start when, and what "up" waits for.

Every child that "up" needs starts at once (proxy, code server, webserver): the webserver's import and the
proxy's schema build overlap the code loading, which is the longest step, instead of following it (as
`dagster dev` does). Dagster's gRPC watch thread picks the location up as soon as the code server answers
(aggregator/dev_location.py). What "up" does not need (daemon, worker) starts after it, so it does not take
CPU from the start-up on a two-core machine.

One exception on a fresh AGGREGATOR_HOME: the code server creates Dagster's SQLite instance storage while it
loads, and a webserver doing the same at the same moment stamped the schema twice ("alembic_version has more
than one head"), after which the daemon and every reload failed for good. The webserver then waits until the
storage is there (`instance_storage_ready`, about half-way through the code loading) or, for storage this
check does not know (a `storage:` block in dagster.yaml), until the code server listens.

Each readiness check is reported once, with the seconds since the start, by name and never by address: the
terminal then shows where the start-up time went.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.dev_supervisor import ChildSpec, Supervisor

POLL_S = 0.1  # the checks are a port connect or a small local request: cheap next to a second of start-up
STILL_WAITING_EVERY_S = 30.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ReadyCheck:
    """One thing the start-up waits for; `says` is printed once it holds."""

    name: str
    ready: Callable[[], bool]
    says: str


@dataclass
class Readiness:
    """The checks not yet passed; `poll()` reports each one that passes and says whether all have."""

    checks: Sequence[ReadyCheck]
    progress: Say
    passed: set[str] = field(default_factory=set)

    def pending(self) -> list[ReadyCheck]:
        return [c for c in self.checks if c.name not in self.passed]

    def poll(self) -> bool:
        for check in self.pending():
            if check.ready():
                self.passed.add(check.name)
                self.progress(check.says)
        return not self.pending()


# Dagster's default SQLite storage under DAGSTER_HOME: runs, event log index, schedules; each stamped by alembic.
STORAGE_DBS = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def instance_storage_ready(dagster_home: Path) -> bool:
    """Every SQLite database of the instance exists with its one alembic stamp (read-only, never creating one)."""
    for relative in STORAGE_DBS:
        path = dagster_home / relative
        if not path.exists():
            return False
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
                if db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] != 1:
                    return False
        except sqlite3.Error:
            return False  # being created right now
    return True


def start_stage(supervisor: Supervisor, children: Sequence[ChildSpec], stage: str) -> None:
    """Spawn every child of `stage` without waiting on any of them."""
    for spec in children:
        if spec.after == stage:
            supervisor.start(spec)


def bring_up(supervisor: Supervisor, children: Sequence[ChildSpec], checks: Sequence[ReadyCheck],
             progress: Say, say: Say, gates: Mapping[str, ReadyCheck] | None = None) -> None:
    """Start the "start" children together, each gated stage's children once its check holds, wait (never
    giving up: a loaded machine may take minutes) until every check passes, restarting crashed children
    meanwhile, then start the "up" children."""
    start_stage(supervisor, children, "start")
    closed = dict(gates or {})
    readiness = Readiness(checks, progress)
    started = last_said = time.monotonic()
    while True:
        for stage, gate in list(closed.items()):
            if gate.ready():
                del closed[stage]
                progress(gate.says)
                start_stage(supervisor, children, stage)
        if not closed and readiness.poll():
            break
        supervisor.check()
        if time.monotonic() - last_said >= STILL_WAITING_EVERY_S:
            waiting = ", ".join([*(g.name for g in closed.values()), *(c.name for c in readiness.pending())])
            say(f"still waiting for {waiting} ({time.monotonic() - started:.0f} s); the UI shows a starting "
                f"page meanwhile (Ctrl-C to stop)")
            last_said = time.monotonic()
        time.sleep(POLL_S)
    start_stage(supervisor, children, "up")
