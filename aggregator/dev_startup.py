"""The start-up of `aggregator dev`: which children start when, and what "up" waits for.

Every child that "up" needs starts at once (proxy, code server, webserver): the webserver's import and the
proxy's schema build overlap the code loading, which is the longest step, instead of following it (as
`dagster dev` does). Dagster's gRPC watch thread picks the location up as soon as the code server answers
(aggregator/dev_location.py). What "up" does not need (daemon, worker) starts after it, so it does not take
CPU from the start-up on a two-core machine.

Each readiness check is reported once, with the seconds since the start, by name and never by address: the
terminal then shows where the start-up time went.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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


def start_stage(supervisor: Supervisor, children: Sequence[ChildSpec], stage: str) -> None:
    """Spawn every child of `stage` without waiting on any of them."""
    for spec in children:
        if spec.after == stage:
            supervisor.start(spec)


def bring_up(supervisor: Supervisor, children: Sequence[ChildSpec], checks: Sequence[ReadyCheck],
             progress: Say, say: Say) -> None:
    """Start the "start" children together, wait (never giving up: a loaded machine may take minutes) until
    every check passes, restarting crashed children meanwhile, then start the "up" children."""
    start_stage(supervisor, children, "start")
    readiness = Readiness(checks, progress)
    started = last_said = time.monotonic()
    while not readiness.poll():
        supervisor.check()
        if time.monotonic() - last_said >= STILL_WAITING_EVERY_S:
            waiting = ", ".join(c.name for c in readiness.pending())
            say(f"still waiting for {waiting} ({time.monotonic() - started:.0f} s); the UI shows a starting "
                f"page meanwhile (Ctrl-C to stop)")
            last_said = time.monotonic()
        time.sleep(POLL_S)
    start_stage(supervisor, children, "up")
