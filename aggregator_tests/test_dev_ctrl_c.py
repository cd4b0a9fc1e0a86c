"""Issue 11.5: Ctrl-C in `aggregator dev` during a run cancels the run (CANCELED in Dagster), says so while it
waits, and leaves no process behind: code server, run worker and step processes included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import psutil
import pytest
import requests

from aggregator_tests.process_env import platform_env
from aggregator_tests.test_inflight_run import GATED, Gate
from aggregator_tests.testapi import serve

pytestmark = pytest.mark.slow

LAUNCH = """mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } }
}"""


class Output:
    """Lines of a child's output, collected by a thread, with an event per awaited text."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.proc = proc
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        finally:
            # Read to the end: the pipe is ours to close (left to GC it warns, ResourceWarning).
            self.proc.stdout.close()
        with self._changed:
            self._changed.notify_all()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str) -> None:
        """Wait while the process lives and has not printed `needle` (progress, not a deadline)."""
        with self._changed:
            while needle not in self.text():
                if self.proc.poll() is not None and not self.thread.is_alive():
                    pytest.fail(f"exited before printing {needle!r}:\n{self.text()[-4000:]}")
                self._changed.wait(1)


def _internal_port(dev: psutil.Process) -> int:
    for child in dev.children(recursive=True):
        cmd = child.cmdline()
        if "dagster_webserver" in cmd and "--port" in cmd:
            return int(cmd[cmd.index("--port") + 1])
    raise AssertionError("no webserver child found")


def _wait_event(event: threading.Event, proc: subprocess.Popen[str], out: Output, what: str) -> None:
    while not event.wait(0.5):
        if proc.poll() is not None:
            pytest.fail(f"aggregator dev exited before {what}:\n{out.text()[-4000:]}")


@pytest.mark.timeout(900)  # start-up, a queued run's launch and a shutdown: minutes each at load 20+
def test_ctrl_c_cancels_the_running_run_and_leaves_no_process(tmp_path: Path, free_port: int) -> None:
    """The reported case: Ctrl-C exited while the code server (orphaned to PID 1), the run worker and new step
    processes kept running and printing until the run ended."""
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir()
    gate = Gate()
    tree: list[psutil.Process] = []
    with serve(gate.app()) as url:
        (specs / "gated.yaml").write_text(GATED.format(url=url))
        env = platform_env()
        env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs))
        env["AGGREGATOR_ALLOWED_NETWORKS"] = "127.0.0.0/8"  # the test API on loopback (connectors/egress.py)
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator.cli", "dev", "--port", str(free_port)], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        out = Output(proc)
        try:
            out.wait_for("Data Aggregator is up")
            port = _internal_port(psutil.Process(proc.pid))
            # `aggregator dev` names the code location after the module, as `dagster dev -m` did.
            selector = {"repositoryLocationName": "aggregator.definitions", "repositoryName": "__repository__",
                        "jobName": "gated_job"}
            launched = requests.post(f"http://127.0.0.1:{port}/graphql", timeout=60, json={
                "query": LAUNCH, "variables": {"params": {"selector": selector}}}).json()
            assert "run" in launched["data"]["launchRun"], launched
            run_id = launched["data"]["launchRun"]["run"]["runId"]
            _wait_event(gate.reached, proc, out, "the run reached its first step")
            tree = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            out.wait_for("stopped; no process left behind")
            proc.wait()
        finally:
            gate.release.set()
            # `aggregator dev` starts its children in their own sessions: kill the tree, not only the group.
            if proc.poll() is None:
                tree = [*tree, *psutil.Process(proc.pid).children(recursive=True)]
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for child in tree:
                if child.is_running():
                    child.kill()
    text = out.text()
    assert proc.returncode == 0, text[-4000:]
    assert f"canceling 1 in-flight run(s): gated_job {run_id[:8]}" in text
    assert "shutting down" in text
    # Newcomer review 6: neither the run's DEBUG events nor the interrupted run's tracebacks reach the terminal;
    # they are in the code server's log file.
    assert "STEP_START" not in text and "Traceback" not in text, text[-4000:]
    assert "STEP_START" in (home / "logs" / "code-server.log").read_text()
    left = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [p.cmdline() for p in left]
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.CANCELED, run
