"""A real `aggregator dev` for tests: started as a user starts it, up when it says so, stopped with Ctrl-C.

Its output is read on a thread (a full pipe would block the supervisor) and kept for assertion messages.
Stopping takes the process tree *before* the SIGINT: `aggregator dev` starts its children in their own
sessions, so if it does not stop in time they are killed from that list (a killpg would miss them).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

UP_LINE = "Data Aggregator is up"


@dataclass
class DevProcess:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)
    up: threading.Event = field(default_factory=threading.Event)
    reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if UP_LINE in line:
                self.up.set()

    def wait_up(self) -> None:
        """Until dev says it is up (progress, not a deadline: the suite's timeout bounds it), or it exits."""
        while self.proc.poll() is None and not self.up.wait(timeout=1):
            pass
        assert self.up.is_set(), f"aggregator dev exited with {self.proc.poll()} before it was up:\n{self.output}"

    def stop(self, timeout_s: float = 180) -> None:
        """Ctrl-C, as a user stops it; whatever is still running after `timeout_s` is killed."""
        proc = self.proc
        tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for child in [*tree, psutil.Process(proc.pid)]:
                if child.is_running():
                    child.kill()
            proc.wait()
        psutil.wait_procs([c for c in tree if c.is_running()], timeout=30)
        if self.reader is not None:
            self.reader.join(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()  # the pipe's file object; left to the garbage collector it is a ResourceWarning


def start_dev(env: Mapping[str, str], port: int, cwd: Path) -> DevProcess:
    """`aggregator dev --port PORT` in `cwd` with exactly `env`; returns once it is up (stopped if it never is)."""
    proc = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "dev", "--port", str(port)], cwd=cwd,
                            env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dev = DevProcess(proc, port)
    dev.reader = threading.Thread(target=dev._read, daemon=True)
    dev.reader.start()
    try:
        dev.wait_up()
    except BaseException:
        dev.stop()
        raise
    return dev


@contextmanager
def running_dev(env: Mapping[str, str], port: int, cwd: Path) -> Iterator[DevProcess]:
    """`start_dev`, stopped when the block ends, also on failure."""
    dev = start_dev(env, port, cwd)
    try:
        yield dev
    finally:
        dev.stop()
