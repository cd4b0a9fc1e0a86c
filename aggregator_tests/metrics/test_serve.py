"""`aggregator metrics serve` as a real process: /metrics answers in the exposition format, other paths 404."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
