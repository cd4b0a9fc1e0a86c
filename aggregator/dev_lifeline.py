"""Children of `aggregator dev` never outlive it, even when it is SIGKILLed or its shutdown is slow.

Two mechanisms, because no single one reaches every process of the tree:
- Its direct children (proxy, code server, webserver, daemon) are bound with Linux `PR_SET_PDEATHSIG`: the
  kernel sends them SIGKILL the moment the supervisor dies. That flag is not inherited across fork, so
- every process below them that imports `aggregator` (the code server's `dagster api grpc` subprocess, run
  workers, step processes) runs a watchdog thread that exits once the supervisor named in
  `AGGREGATOR_DEV_SUPERVISOR` is gone. It watches the supervisor, not its own parent: a run worker must
  survive a crash of the code server that spawned it (the supervisor restarts that one), only not the
  platform's end.

The supervisor also makes itself a child subreaper, so what a crashed child leaves behind (a run worker of a
killed code server) is re-parented to it, where shutdown finds it, rather than to PID 1.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SUPERVISOR_ENV = "AGGREGATOR_DEV_SUPERVISOR"
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
WATCH_INTERVAL_S = 1.0
TERM_GRACE_S = 3.0


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]


def start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/<pid>/stat): a pid plus this names one process,
    even after the pid is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def supervisor_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid) or ''}"


def die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` that makes the child receive SIGKILL when the process that forked it dies.

    The flag is tied to the forking *thread*: the supervisor forks only from its main thread. The check of
    the parent pid closes the race where the supervisor died between fork and prctl."""
    prctl, parent = _prctl(), os.getpid()

    def _bind() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return _bind


def become_subreaper() -> None:
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1)


def reap_adopted(managed: set[int]) -> None:
    """Collect the exit status of adopted orphans (never of `managed` children: their Popen does that)."""
    me = os.getpid()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        if fields[0] == "Z" and int(fields[1]) == me and pid not in managed:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _supervisor_gone(token: str) -> bool:
    pid, _, started = token.partition(":")
    return start_time(int(pid)) != (started or None)


def watch_supervisor_from_env() -> None:
    """Start the watchdog when this process belongs to an `aggregator dev` tree (no-op otherwise)."""
    token = os.environ.get(SUPERVISOR_ENV)
    if not token or not token.partition(":")[0].isdigit() or int(token.partition(":")[0]) == os.getpid():
        return
    if getattr(watch_supervisor_from_env, "_started", False):
        return
    watch_supervisor_from_env._started = True  # type: ignore[attr-defined]

    def _watch() -> None:
        while not _supervisor_gone(token):
            time.sleep(WATCH_INTERVAL_S)
        # SIGTERM first so a run worker can record its end; nothing may keep the process alive past the grace.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(TERM_GRACE_S)
        os._exit(70)

    threading.Thread(target=_watch, name="aggregator-dev-watchdog", daemon=True).start()
