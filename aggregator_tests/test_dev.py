"""`aggregator dev` brings the proxy, webserver and daemon up, answers, and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import requests

from aggregator_tests.process_env import platform_env

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = platform_env()
    env["AGGREGATOR_HOME"] = str(home)
    return env


def test_dev_starts_answers_and_stops_cleanly(tmp_path: Path, free_port: int) -> None:
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "dev", "--port", str(free_port)],
        cwd=workdir, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # stdout is read by a thread so the test can wait for the "is up" line (progress, not a fixed sleep):
    # /server_info may answer a moment before `aggregator dev` has printed its URL.
    lines: list[str] = []
    up = threading.Event()

    def _read() -> None:
        assert proc.stdout is not None
        with proc.stdout:  # closed at EOF: a pipe left to GC warns (ResourceWarning)
            for line in proc.stdout:
                lines.append(line)
                if "Data Aggregator is up" in line:
                    up.set()

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    try:
        while proc.poll() is None and not up.wait(timeout=1):
            pass
        assert up.is_set(), f"aggregator dev exited with {proc.poll()} before it was up:\n{''.join(lines)}"
        health = requests.get(f"http://127.0.0.1:{free_port}/healthz", timeout=10)
        # /healthz is public (health checks); everything else, Dagster's /server_info too, needs a principal.
        assert health.json() == {"status": "ok"}
        assert requests.get(f"http://127.0.0.1:{free_port}/server_info", timeout=10).status_code == 401
        graphql = f"http://127.0.0.1:{free_port}/graphql"
        assert requests.post(graphql, json={"query": "{ version }"}, timeout=10).status_code == 401
        # The daemon is part of the platform: schedules only tick if it runs.
        children = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(c.cmdline()) for c in children if c.is_running()]
        assert any("dagster-daemon" in c or "daemon" in c for c in cmdlines), cmdlines
        assert any("webserver" in c for c in cmdlines), cmdlines
        assert any("aggregator.cli proxy" in c for c in cmdlines), cmdlines
    finally:
        # Taken before the SIGINT: `aggregator dev` starts its children in their own sessions, so if it does
        # not stop they are killed from this list (a killpg would miss them).
        tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for child in [*tree, psutil.Process(proc.pid)]:
                if child.is_running():
                    child.kill()
            proc.wait()
            raise
        finally:
            reader.join(timeout=30)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{free_port}" in output
    # Issue 11.10: the private webserver URL bypasses sign-in, and the supersession warning is Dagster's noise.
    assert "Serving dagster-webserver on" not in output, output
    assert "Warning" not in output, output
    assert "stopped; no process left behind" in output
    # stdout is a pipe here, not a terminal: no password is generated (it would land in a log); the
    # operator is told to set AGGREGATOR_ADMIN_PASSWORD instead.
    assert "password:" not in output and "Set AGGREGATOR_ADMIN_PASSWORD" in output, output
    # Newcomer review 6: the start says what it is doing, stage by stage, never a private address; the code
    # server's output (and so every run worker's DEBUG events) goes to a file the "is up" line names.
    assert "starting: the UI on" in output and "code location loaded in the webserver" in output, output
    assert str(home / "logs" / "code-server.log") in output, output
    assert (home / "logs" / "code-server.log").exists()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running: {alive}"
    # Nothing written outside AGGREGATOR_HOME: the working directory stays empty.
    assert list(workdir.iterdir()) == []
    assert (home / "dagster" / "dagster.yaml").exists()
    assert (home / "dagster" / "schedules").exists() or (home / "dagster" / "storage").exists()


def test_dev_fails_clearly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "aggregator.cli", "dev", "--port", str(port)],
            cwd=tmp_path, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
