"""`aggregator metrics serve` as a real process: /metrics answers in the exposition format, other paths 404; it
finds the instance from AGGREGATOR_HOME alone and stops on SIGTERM and SIGINT (issue 20: it ignored both, and the
suite once left one running for 37 minutes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator_tests.alerts.conftest import free_port
from aggregator_tests.process_env import platform_env


def test_metrics_serve_answers_and_parses(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = platform_env()
    env.update(DAGSTER_HOME=str(home), AGGREGATOR_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "metrics", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body = None
        while body is None:  # follows the process: it answers once Dagster has been imported
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
                body = response.text
            except httpx.HTTPError:
                time.sleep(0.3)
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"aggregator_runs", "aggregator_rows_loaded", "aggregator_asset_check_passing"} <= names
        assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()


def _start(tmp_path: Path, port: int, *, ignore_sigint: bool = False) -> subprocess.Popen[bytes]:
    """The command with AGGREGATOR_HOME only (no DAGSTER_HOME), on the instance `aggregator dev` would create."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env["AGGREGATOR_HOME"] = str(home)

    def sigint_ignored() -> None:  # as a shell starts a background job: SIGINT inherited as ignored
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "aggregator.cli", "metrics", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=sigint_ignored if ignore_sigint else None)  # noqa: PLW1509 (test-only)


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int) -> None:
    while True:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)


@pytest.mark.parametrize(("signum", "ignore_sigint"), [(signal.SIGTERM, False), (signal.SIGINT, True)])
def test_metrics_serve_stops_on_a_signal(tmp_path: Path, signum: signal.Signals, ignore_sigint: bool) -> None:
    port = free_port()
    proc = _start(tmp_path, port, ignore_sigint=ignore_sigint)
    try:
        _wait_until_serving(proc, port)
        proc.send_signal(signum)
        assert proc.wait(30) == 0
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert f"{signum.name}: stopping" in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        if proc.stdout:
            proc.stdout.close()


def test_metrics_serve_without_an_instance_says_where_it_looked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env["AGGREGATOR_HOME"] = str(tmp_path / "nowhere")
    result = subprocess.run([sys.executable, "-m", "aggregator.cli", "metrics", "serve", "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"no Dagster instance at {tmp_path / 'nowhere' / 'dagster'}" in result.stderr
    assert "DAGSTER_HOME is not set" not in result.stderr
