"""Keep the children of `aggregator dev` running: start them, restart a crashed one with backoff, stop all.

One child dying is never a reason to stop the platform or cancel its runs: the run workers belong to the
code server's tree and keep writing to the instance while the supervisor brings the dead process back. Only
Ctrl-C / SIGTERM of `aggregator dev` itself shuts down (aggregator/dev.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aggregator.dev_lifeline import die_with_parent

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
STABLE_S = 60.0  # a child that ran this long starts its next backoff from the beginning again
STOP_GRACE_S = 30.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class ChildSpec:
    """One process of the platform: what to run, with which environment; named for log lines (never a URL)."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    cwd: Path
    # When to start it: "start" at once (proxy, code server); "instance" once Dagster's instance storage exists
    # (the webserver: two processes creating a fresh SQLite storage at once stamp it twice, and every later
    # process then fails, aggregator/dev_startup.py); "up" once the platform answers (the daemon and the worker:
    # nothing of the start-up waits for them, so they do not compete for CPU with it).
    after: Literal["start", "instance", "up"] = "start"
    # Where its stdout and stderr go (appended); None: the terminal of `aggregator dev`.
    log: Path | None = None
    # A private port on 127.0.0.1 it answers on once ready, for the "<name> answering" line (None: not watched).
    listens: int | None = None


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_row: int = 0
    restart_at: float | None = None
    on_restart: list[Callable[[], None]] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, say: Say) -> None:
        self.say = say
        self.children: dict[str, Child] = {}

    def start(self, spec: ChildSpec) -> Child:
        child = self.children.setdefault(spec.name, Child(spec))
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        # Own session: a terminal Ctrl-C reaches only the supervisor, which stops the children in order.
        # preexec_fn is safe here: the supervisor runs no threads, and PDEATHSIG needs the forking thread
        # to be the long-lived main one anyway.
        output = None
        if spec.log is not None:
            spec.log.parent.mkdir(parents=True, exist_ok=True)
            output = spec.log.open("ab")
        try:
            child.proc = subprocess.Popen(  # noqa: S603 (argv list, no shell: our interpreter and modules)
                list(spec.argv), env=spec.env, cwd=spec.cwd, start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509
                stdout=output, stderr=subprocess.STDOUT if output is not None else None,
            )
        finally:
            if output is not None:
                output.close()  # the child holds its own copy of the descriptor
        child.started_at, child.restart_at = time.monotonic(), None

    def pids(self) -> set[int]:
        return {c.proc.pid for c in self.children.values() if c.proc is not None}

    def check(self) -> None:
        """Notice dead children and restart them when their backoff has passed; call every fraction of a second."""
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is None or child.running:
                continue
            if child.restart_at is None:
                code = child.proc.returncode
                lived = now - child.started_at
                child.failures_in_row = 0 if lived >= STABLE_S else child.failures_in_row + 1
                delay = BACKOFF_S[min(max(child.failures_in_row - 1, 0), len(BACKOFF_S) - 1)]
                child.restart_at = now + delay
                self.say(f"supervisor: {child.spec.name} exited ({_describe(code)}) after {lived:.0f} s; "
                         f"restarting it in {delay:.0f} s (restart {child.restarts + 1}); runs keep going")
            elif now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)
                self.say(f"supervisor: {child.spec.name} restarted (pid {child.proc.pid})")
                for hook in child.on_restart:
                    hook()

    def stop_all(self, order: Sequence[str]) -> dict[str, int]:
        """SIGINT each running child in `order` (then any child not named there), wait (bounded), then SIGKILL
        its process group."""
        codes: dict[str, int] = {}
        for name in [*order, *(n for n in self.children if n not in order)]:
            child = self.children.get(name)
            if child is None or child.proc is None:
                continue
            codes[name] = stop(child.proc)
        return codes

    def kill_all(self) -> None:
        for child in self.children.values():
            if child.running and child.proc is not None:
                _killpg(child.proc)


def stop(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _killpg(proc)
    return int(proc.returncode)


def _killpg(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
