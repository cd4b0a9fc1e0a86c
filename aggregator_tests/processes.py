"""What every test that starts a server process needs: a free loopback port, and a stop that always ends the
process's whole group (a server's children included) — SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """Stop `proc`'s process group (started with `start_new_session=True`): SIGTERM, then SIGKILL after
    `grace_s`; returns once `proc` is reaped."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
