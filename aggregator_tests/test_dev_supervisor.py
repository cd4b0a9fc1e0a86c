"""Issue 20.3: one process death stopped the whole platform (the daemon), canceled in-flight runs (the proxy),
or left it answering but unable to run (the code server). Against a real `aggregator dev`: SIGKILL each child
at idle and during a run; the platform recovers by itself, no run is canceled because of it, and a run
launched afterwards succeeds. And a SIGKILL of `aggregator dev` itself leaves no process of its tree."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest
import requests

from aggregator.proxy.config import proxy_db_url
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator_tests.process_env import platform_env
from aggregator_tests.processes import free_port
from aggregator_tests.test_dev_ctrl_c import Output
from aggregator_tests.test_inflight_run import GATED, Gate
from aggregator_tests.testapi import serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# What each child's command line holds (the supervisor's direct children).
CHILDREN = {
    "proxy": "aggregator.cli proxy",
    "code server": "code-server start",
    "webserver": "dagster_webserver",
    "daemon": "dagster._daemon run",
}
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
PROGRESS_S = 600  # a generous bound on a loaded 2-core machine; waits end as soon as progress is seen


@dataclass
class Platform:
    proc: subprocess.Popen[str]
    out: Output
    home: Path
    url: str
    token: str
    gate: Gate

    def child(self, name: str) -> psutil.Process:
        for child in psutil.Process(self.proc.pid).children():
            try:
                cmdline = " ".join(child.cmdline())
            except (psutil.ZombieProcess, psutil.NoSuchProcess):  # a killed child not yet reaped
                continue
            if CHILDREN[name] in cmdline:
                return child
        raise AssertionError(f"no {name} child of aggregator dev")

    def restarted(self, name: str) -> int:
        return self.out.text().count(f"supervisor: {name} restarted")

    def trigger(self) -> str:
        """Launch the gated pipeline through the proxy, retrying while the platform says "not now" (503)."""
        deadline = time.monotonic() + PROGRESS_S
        while True:
            assert self.proc.poll() is None, self.out.text()[-4000:]
            try:
                response = requests.post(f"{self.url}/api/pipelines/gated/trigger", timeout=60,
                                         headers={"authorization": f"Bearer {self.token}"})
            except requests.ConnectionError:  # the proxy itself is restarting
                response = None
            if response is not None and response.status_code == 201:
                return str(response.json()["run_id"])
            assert response is None or response.status_code in (502, 503), response.text
            assert time.monotonic() < deadline, (
                f"trigger never succeeded: last answer {response.status_code if response is not None else None} "
                f"{response.text[:500] if response is not None else ''}\n{self.out.text()[-3000:]}")
            time.sleep(1)

    def run_status(self, run_id: str) -> dg.DagsterRunStatus:
        with dg.DagsterInstance.from_config(str(self.home / "dagster")) as instance:
            run = instance.get_run_by_id(run_id)
            assert run is not None
            return run.status

    def wait_run(self, run_id: str) -> dg.DagsterRunStatus:
        deadline = time.monotonic() + PROGRESS_S
        while (status := self.run_status(run_id)) not in FINISHED:
            assert time.monotonic() < deadline, f"run {run_id} still {status}"
            time.sleep(1)
        return status

    def kill(self, name: str) -> None:
        before = self.restarted(name)
        victim = self.child(name)
        victim.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + PROGRESS_S
        while self.restarted(name) <= before:
            assert self.proc.poll() is None, f"aggregator dev ended after the {name} died:\n{self.out.text()[-4000:]}"
            assert time.monotonic() < deadline, f"{name} never restarted:\n{self.out.text()[-4000:]}"
            time.sleep(0.2)
        assert self.child(name).pid != victim.pid


def _start(tmp_path: Path, gate_url: str) -> tuple[subprocess.Popen[str], Output, Path, str, str]:
    specs, home = tmp_path / "specs", tmp_path / "home"
    specs.mkdir(parents=True)
    (specs / "gated.yaml").write_text(GATED.format(url=gate_url))
    home.mkdir()
    store, _ = open_store(proxy_db_url(home, environ={}))
    store.add_user("launcher", "correct horse battery staple", Role.launcher)
    token, _ = store.create_token("launcher")
    port = free_port()
    # platform_env keeps the suite's egress grants: the gate API is on 127.0.0.1 (connectors/egress.py).
    env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs))
    proc = subprocess.Popen([sys.executable, "-m", "aggregator.cli", "dev", "--port", str(port)], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out = Output(proc)
    return proc, out, home, f"http://127.0.0.1:{port}", token



def _stop(proc: subprocess.Popen[str], tree: list[psutil.Process]) -> None:
    if proc.poll() is None:
        tree = [*tree, *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for child in tree:
        if child.is_running():
            child.kill()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    gate = Gate()
    with serve(gate.app()) as gate_url:
        proc, out, home, url, token = _start(tmp_path_factory.mktemp("supervised"), gate_url)
        try:
            out.wait_for("Data Aggregator is up")
            yield Platform(proc, out, home, url, token, gate)
        finally:
            gate.release.set()
            _stop(proc, [])


@pytest.mark.parametrize("name", list(CHILDREN))
def test_sigkill_at_idle_recovers_and_runs(platform: Platform, name: str) -> None:
    platform.gate.release.set()
    platform.kill(name)
    run_id = platform.trigger()
    assert platform.wait_run(run_id) == dg.DagsterRunStatus.SUCCESS


@pytest.mark.parametrize("name", list(CHILDREN))
def test_sigkill_during_a_run_does_not_cancel_it(platform: Platform, name: str) -> None:
    gate = platform.gate
    gate.reached.clear()
    gate.release.clear()
    run_id = platform.trigger()
    deadline = time.monotonic() + PROGRESS_S
    while not gate.reached.wait(0.5):
        assert time.monotonic() < deadline and platform.proc.poll() is None, "the run never reached its step"
        assert platform.run_status(run_id) not in FINISHED, platform.run_status(run_id)
    platform.kill(name)
    assert platform.run_status(run_id) == dg.DagsterRunStatus.STARTED
    gate.release.set()
    assert platform.wait_run(run_id) == dg.DagsterRunStatus.SUCCESS, platform.out.text()[-4000:]
    assert "canceling" not in platform.out.text()
    # and the platform still launches: a run after the death succeeds too
    assert platform.wait_run(platform.trigger()) == dg.DagsterRunStatus.SUCCESS


def test_sigkill_of_aggregator_dev_leaves_no_process(tmp_path: Path) -> None:
    """The reported case: a kill of `aggregator dev` left the webserver, daemon, code servers and proxy
    running for an hour. Killed mid-run, so run worker and step processes are part of the tree too."""
    gate = Gate()
    tree: list[psutil.Process] = []
    with serve(gate.app()) as gate_url:
        proc, out, home, url, token = _start(tmp_path, gate_url)
        platform = Platform(proc, out, home, url, token, gate)
        try:
            out.wait_for("Data Aggregator is up")
            platform.trigger()
            while not gate.reached.wait(0.5):
                assert proc.poll() is None, out.text()[-4000:]
            tree = psutil.Process(proc.pid).children(recursive=True)
            names = " ".join(" ".join(p.cmdline()) for p in tree)
            assert "dagster api grpc" in names and "multiprocessing" in names, names  # code server's own children
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            _gone, alive = psutil.wait_procs(tree, timeout=30)
            alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
            assert not alive, [p.cmdline() for p in alive]
        finally:
            gate.release.set()
            _stop(proc, tree)
