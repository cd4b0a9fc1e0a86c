"""Issue 20: `aggregator dev` took 3x as long as `dagster dev` to be up. What the faster start-up relies on:
every child "up" needs starts together (the webserver no longer waits for the code server), the daemon and
worker only after "up", and a webserver started before the code server picks the location up when it
answers *without* the code being loaded twice. The time itself is measured by bench/dev_startup.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from aggregator.dev import LOCATION_NAME, platform_children
from aggregator.dev_location import LocationWatch
from aggregator.dev_startup import ReadyCheck, bring_up
from aggregator.dev_supervisor import Supervisor
from aggregator.settings import Settings
from aggregator_tests.process_env import platform_env
from aggregator_tests.processes import free_port, stop_group

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _running(supervisor: Supervisor) -> set[str]:
    return {name for name, child in supervisor.children.items() if child.running}


def test_everything_up_needs_starts_before_anything_is_waited_for(tmp_path: Path) -> None:
    """The platform's real child declarations, each run as a stand-in process: by the first readiness check
    proxy, code server and webserver all run (none waits for another), daemon and worker do not yet; they
    start once every check passed. Each check is reported once, in the order it passed."""
    settings = Settings(home=tmp_path / "home", pipelines_dir=tmp_path / "specs",
                        warehouse_url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    children = [replace(spec, argv=SLEEPER, log=tmp_path / f"{spec.name}.log")
                for spec in platform_children(settings, "127.0.0.1", free_port(), free_port(), free_port(), "0:")]
    supervisor = Supervisor(lambda _line: None)
    seen: dict[str, set[str]] = {}
    lines: list[str] = []
    # The code server "loads" over three polls, the location follows: the others already run meanwhile.
    polls = {"code server": 3, "code location": 4}

    def ready_after_polls(name: str) -> bool:
        seen.setdefault(name, _running(supervisor))
        polls[name] = polls.get(name, 1) - 1
        return polls[name] <= 0

    checks = [ReadyCheck(name, lambda name=name: ready_after_polls(name), f"{name} ready")  # type: ignore[misc]
              for name in ("proxy", "webserver", "code server", "code location")]
    # The instance storage is there (a second start): the webserver starts at the first look.
    instance = ReadyCheck("instance storage", lambda: True, "instance ready")
    try:
        bring_up(supervisor, children, checks, lines.append, lines.append, {"instance": instance})
        up_now = _running(supervisor)
    finally:
        supervisor.kill_all()
    for name, running in seen.items():
        assert running == {"proxy", "code server", "webserver"}, (name, running)
    assert lines == ["instance ready", "proxy ready", "webserver ready", "code server ready", "code location ready"]
    assert up_now == {"proxy", "code server", "webserver", "daemon", "worker"}


DEFS = """
import dagster as dg

@dg.asset
def numbers() -> int:
    return 1

defs = dg.Definitions(assets=[numbers])
"""


def _loaders(code_server: subprocess.Popen[bytes]) -> set[int]:
    """The code server's loader processes (`dagster api grpc`): one per load of the code."""
    found = set()
    for child in psutil.Process(code_server.pid).children(recursive=True):
        try:
            if "api grpc" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_webserver_started_first_picks_the_location_up_without_a_second_load(tmp_path: Path) -> None:
    """The regression behind the first try of a concurrent start: the supervisor reloaded the location as soon
    as the code server listened, and Dagster's code server answers a reload by loading the code again in a new
    process. A real webserver started before a real code server must see the location loaded with the code
    server's first loader still the one serving."""
    (tmp_path / "defs.py").write_text(DEFS)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    code_port, web_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": code_port, "location_name": LOCATION_NAME}}]}))
    env = platform_env(DAGSTER_HOME=str(dagster_home))
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(argv: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    try:
        webserver = spawn([sys.executable, "-m", "dagster_webserver", "-w", str(workspace), "--host", "127.0.0.1",
                           "--port", str(web_port)])
        watch = LocationWatch(f"http://127.0.0.1:{web_port}", LOCATION_NAME)
        # The webserver answers while the code server does not exist: the location is not settled.
        while watch._entries() is None:
            assert webserver.poll() is None, "the webserver exited"
            time.sleep(0.2)
        assert not watch.settled(code_listening=False)
        code_server = spawn([sys.executable, "-m", "dagster", "code-server", "start", "-f", "defs.py",
                             "--location-name", LOCATION_NAME, "--host", "127.0.0.1", "--port", str(code_port)])
        while not _port_open(code_port):
            assert code_server.poll() is None, "the code server exited"
            time.sleep(0.1)
        first = _loaders(code_server)
        assert len(first) == 1, first
        while not watch.settled(_port_open(code_port)):
            assert webserver.poll() is None and code_server.poll() is None
            time.sleep(0.1)
        assert _loaders(code_server) == first, "the code was loaded a second time"
        entries = watch._entries()
        assert entries is not None
        assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"], entries
    finally:
        for proc in reversed(procs):
            stop_group(proc)


def test_instance_storage_ready_only_once_dagster_created_and_stamped_it(tmp_path: Path) -> None:
    """Why the webserver waits on a fresh home: the code server creates Dagster's SQLite storage while it loads,
    and a webserver creating it at the same moment stamped it twice ("alembic_version has more than one head");
    the daemon and every reload then failed (found by test_dev_supervisor). Ready means created by Dagster."""
    from aggregator.dev_startup import instance_storage_ready

    home = tmp_path / "dagster"
    home.mkdir()
    assert not instance_storage_ready(home)
    with dg.DagsterInstance.from_config(str(home)):
        pass
    assert instance_storage_ready(home)
    assert not instance_storage_ready(tmp_path / "elsewhere")
