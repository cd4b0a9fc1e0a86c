"""`aggregator dev`: the whole platform on one machine, kept running by a supervisor.

Four children, one declaration each (`platform_children`): the authenticated proxy on the public port, the
code server that loads the pipelines, the Dagster webserver and the daemon on private ports (and the worker).
Proxy, code server and webserver start together and the proxy answers "starting" until the platform is up
(aggregator/dev_startup.py); a child that dies is restarted with backoff
(aggregator/dev_supervisor.py) and never takes the platform or its runs down; none of them outlives
`aggregator dev`, even a SIGKILL of it (aggregator/dev_lifeline.py).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import requests
import yaml

from aggregator.dev_lifeline import SUPERVISOR_ENV, become_subreaper, reap_adopted, supervisor_token
from aggregator.dev_location import LocationWatch
from aggregator.dev_shutdown import cancel_runs, descendants, kill_leftovers
from aggregator.dev_startup import Readiness, ReadyCheck, bring_up, instance_storage_ready
from aggregator.dev_supervisor import ChildSpec, Supervisor
from aggregator.settings import PACKAGE_DIR, Settings

LOCATION_NAME = "aggregator.definitions"  # the name `dagster dev -m aggregator.definitions` gave it
# Stopped in this order: no new requests, then no new runs, then the code server that runs them.
STOP_ORDER = ("proxy", "daemon", "webserver", "code server")


class PortInUseError(RuntimeError):
    """The port `aggregator dev` should listen on is taken."""


def ensure_port_free(host: str, port: int) -> None:
    """Fail early with a clear message rather than letting the proxy die in its logs.

    SO_REUSEADDR as uvicorn binds: the TIME_WAIT connections a crashed listener leaves for a minute do not
    make the port "in use" (a restart right after a crash was refused for 60 s without it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(
                f"port {port} on {host} is already in use ({exc.strerror}); "
                f"stop whatever is listening there or choose another with --port"
            ) from exc


def prepare_home(settings: Settings) -> Path:
    """Create AGGREGATOR_HOME and the Dagster instance directory with its dagster.yaml."""
    dagster_home = settings.home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = dagster_home / "dagster.yaml"
    if not instance_yaml.exists():
        # Copied once: an operator may edit the instance config in place afterwards.
        shutil.copyfile(PACKAGE_DIR / "dagster.yaml", instance_yaml)
    return dagster_home


# Secrets and settings of the proxy alone. The webserver and daemon pass their environment on to code servers
# and every run worker, where pipeline code could read them, so they get none of these.
PROXY_ONLY_ENV = ("AGGREGATOR_ADMIN_", "AGGREGATOR_PROXY_", "AGGREGATOR_OIDC_", "AGGREGATOR_TRUSTED_PROXIES")


class SpecStoreUrlError(ValueError):
    """The spec store would reach Dagster processes as the proxy database server's URL (its credentials)."""


def children_spec_store_url(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The spec store's URL for Dagster processes: AGGREGATOR_SPECS_DB_URL when the operator set one (a role that
    may only read the spec store), else the proxy's SQLite file, which every process on this machine can open
    anyway. Never a proxy database *server's* URL: its credentials would reach pipeline code."""
    env = os.environ if environ is None else environ
    if env.get("AGGREGATOR_SPECS_DB_URL"):
        return env["AGGREGATOR_SPECS_DB_URL"]
    url = settings.spec_store_url
    if not url.startswith("sqlite"):
        raise SpecStoreUrlError(
            "AGGREGATOR_PROXY_DB_URL is a database server, and the spec store lives there: set "
            "AGGREGATOR_SPECS_DB_URL to a URL of that database with a role that may only read the spec store's "
            "tables (docs/deploy.md), so that the proxy's credentials never reach code servers and runs")
    return url


def child_env(settings: Settings, dagster_home: Path, proxy: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if proxy or not k.startswith(PROXY_ONLY_ENV)}
    env.update(
        AGGREGATOR_HOME=str(settings.home),
        AGGREGATOR_PIPELINES=str(settings.pipelines_dir),
        AGGREGATOR_WAREHOUSE_URL=settings.warehouse_url,
        DAGSTER_HOME=str(dagster_home),
        # Every child reads the specs from the spec store (the proxy's database unless set apart).
        AGGREGATOR_SPECS_DB_URL=settings.spec_store_url if proxy else children_spec_store_url(settings),
    )
    return env


def internal_port() -> int:
    """A free port on 127.0.0.1 for a private child: only the proxy (and the supervisor) talk to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unspecified(host: str) -> bool:
    """0.0.0.0 / :: (listen everywhere): no address a browser could use."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def proxy_env(settings: Settings, host: str, port: int) -> dict[str, str]:
    """The proxy's environment: its secrets, and an explicit public origin so the CSRF check never has to
    guess one (an operator's AGGREGATOR_PROXY_PUBLIC_ORIGIN wins)."""
    env = child_env(settings, settings.home / "dagster", proxy=True)
    browser_host = "localhost" if _unspecified(host) else host
    env.setdefault("AGGREGATOR_PROXY_PUBLIC_ORIGIN", f"http://{browser_host}:{port}")
    # The webserver starts with the code server and answers before the code has loaded: keep the starting page
    # until the location has, as when the webserver started only after it.
    env["AGGREGATOR_PROXY_WAIT_FOR_LOCATION"] = "1"
    return env


def write_workspace(settings: Settings, code_port: int) -> Path:
    """The webserver and daemon reach the code server we run; neither starts code servers of its own."""
    path = settings.home / "dev" / "workspace.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {
        "host": "127.0.0.1", "port": code_port, "location_name": LOCATION_NAME}}]}))
    return path


def worker_child(settings: Settings, pipelines_env: dict[str, str],
                 services: list[str]) -> tuple[ChildSpec, dict[str, str]]:
    """The worker (checks, discovery, previews) with the run workers' environment and a random token for
    this session, and the only settings of it the proxy gets (URL and token). The proxy's databases and the
    platform's services are named to it (without credentials) so connectors refuse them."""
    from aggregator.worker.launch import TOKEN_ENV, URL_ENV, new_token, worker_env

    token, port = new_token(), internal_port()
    proxy = proxy_env(settings, "127.0.0.1", 0)
    databases = [proxy.get("AGGREGATOR_PROXY_DB_URL") or f"sqlite:///{settings.home / 'proxy.db'}",
                 proxy.get("AGGREGATOR_PLATFORM_DB_URL", "")]
    env = worker_env(pipelines_env, token, [*services, f"127.0.0.1:{port}"], databases)
    # Started once the platform is up: nothing of the start-up needs it (the API's checks and previews do), and
    # importing every connector competed for the two cores the webserver and code server start on.
    spec = ChildSpec("worker", [sys.executable, "-m", "aggregator.cli", "worker", "--host", "127.0.0.1",
                                "--port", str(port)], env, settings.home, after="up", listens=port)
    return spec, {URL_ENV: f"http://127.0.0.1:{port}", TOKEN_ENV: token}


def code_server_log(settings: Settings) -> Path:
    return settings.home / "logs" / "code-server.log"


def platform_children(settings: Settings, host: str, port: int, code_port: int, webserver_port: int,
                      token: str) -> list[ChildSpec]:
    """One declaration per child. Dagster's own output stays at warning level: at INFO it prints private
    URLs (which bypass sign-in) and a line per tick; run logs are in the UI."""
    py, home = sys.executable, settings.home
    dagster_home = home / "dagster"
    env = {**child_env(settings, dagster_home), SUPERVISOR_ENV: token}
    workspace = str(write_workspace(settings, code_port))
    upstream = f"http://127.0.0.1:{webserver_port}"
    worker, worker_settings = worker_child(settings, env, [f"127.0.0.1:{webserver_port}", f"{host}:{port}"])
    return [
        ChildSpec("proxy", [py, "-m", "aggregator.cli", "proxy", "--upstream", upstream, "--host", host,
                            "--port", str(port)],
                  {**proxy_env(settings, host, port), SUPERVISOR_ENV: token, **worker_settings}, home),
        worker,
        # No --heartbeat: under load a missed heartbeat made Dagster's code server shut itself down for good;
        # its lifetime is the supervisor's business (PDEATHSIG + watchdog), not a timer's.
        # Its output goes to a file: the run workers it starts print every Dagster DEBUG event (~45 lines per
        # run) and, when Ctrl-C cancels them, interruption tracebacks (newcomer review 6). The UI has the runs.
        ChildSpec("code server", [py, "-m", "dagster", "code-server", "start", "-m", LOCATION_NAME,
                                  "--location-name", LOCATION_NAME, "--host", "127.0.0.1",
                                  "--port", str(code_port), "--log-level", "warning"], env, home,
                  log=code_server_log(settings)),
        # Started with the code server, not after it as `dagster dev` does: its import (seconds) overlaps the code
        # loading, and Dagster's watch thread refreshes the location the moment the code server answers. (An
        # earlier try measured slower: its reload made the code server load everything twice; dev_location.py.)
        ChildSpec("webserver", [py, "-m", "dagster_webserver", "-w", workspace, "--host", "127.0.0.1",
                                "--port", str(webserver_port), "--dagster-log-level", "warning",
                                "--uvicorn-log-level", "warning"], env, home, after="instance",
                  log=home / "logs" / "webserver.log"),
        ChildSpec("daemon", [py, "-m", "dagster._daemon", "run", "-w", workspace, "--log-level", "warning"],
                  env, home, after="up"),
    ]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _answers(url: str, path: str = "/server_info") -> bool:
    try:
        return requests.get(f"{url}{path}", timeout=2).ok
    except requests.RequestException:
        return False


def startup_checks(host: str, port: int, code_port: int, upstream: str) -> list[ReadyCheck]:
    """What "up" means, the same as bench/dev_startup.py measures for `dagster dev`: the webserver holds the
    loaded code location, and the public proxy answers. Its own steps are reported as they pass."""
    location = LocationWatch(upstream, LOCATION_NAME)
    local_host = "127.0.0.1" if _unspecified(host) else f"[{host}]" if ":" in host else host
    return [
        ReadyCheck("proxy", lambda: _answers(f"http://{local_host}:{port}", "/healthz"),
                   "proxy answering (the UI shows a starting page)"),
        ReadyCheck("webserver", lambda: _answers(upstream), "webserver answering"),
        ReadyCheck("code server", lambda: _port_open(code_port), "code server listening: the pipelines are loaded"),
        ReadyCheck("code location", lambda: location.settled(_port_open(code_port)),
                   "code location loaded in the webserver"),
    ]


def run_dev(settings: Settings, host: str, port: int) -> int:
    ensure_port_free(host, port)
    prepare_home(settings)
    # Imported here: the store needs SQLAlchemy, which `aggregator --help` should not pay for.
    from aggregator.dev_specs import SpecWatcher, apply_directory

    specs_line = apply_directory(settings)
    code_port, webserver_port = internal_port(), internal_port()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def _forward(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Handlers before spawning: a process started in the background by a shell inherits SIGINT *ignored*,
    # and an ignored signal stays ignored across exec — our children would then never see the SIGINT we
    # forward. A handled signal is reset to the default in the child.
    signal.signal(signal.SIGINT, _forward)
    signal.signal(signal.SIGTERM, _forward)
    become_subreaper()
    supervisor = Supervisor(say)
    upstream = f"http://127.0.0.1:{webserver_port}"
    url = f"http://{host}:{port}"
    try:
        children = platform_children(settings, host, port, code_port, webserver_port, supervisor_token())
        began = time.monotonic()

        def progress(message: str) -> None:
            say(f"[{time.monotonic() - began:5.1f} s] {message}")

        progress(f"starting: the UI on {url} (a starting page until the platform is up), the code server "
                 f"(loading the pipelines of {settings.pipelines_dir}) and the webserver")
        # The webserver once the instance storage exists (at once after the first start): dev_startup.py.
        instance = ReadyCheck("instance storage", lambda: instance_storage_ready(settings.home / "dagster")
                              or _port_open(code_port), "Dagster instance storage ready; starting the webserver")
        bring_up(supervisor, children, startup_checks(host, port, code_port, upstream), progress, say,
                 {"instance": instance})
        progress("up; starting the daemon (schedules, sensors, the run queue) and the worker")
        print(f"\nData Aggregator is up: {url}  (AGGREGATOR_HOME={settings.home}; Ctrl-C to stop)\n"
              f"Run output and code-server messages: {code_server_log(settings)}\n", flush=True)
        say(specs_line)
        watcher = SpecWatcher(settings, f"{upstream}/graphql", say)
        # Reported as they come, like the start-up's steps; nothing waits for them.
        after_up = Readiness([ReadyCheck(c.name, partial(_port_open, c.listens), f"{c.name} answering")
                              for c in children if c.after == "up" and c.listens is not None], progress)
        while True:
            if after_up.pending():
                after_up.poll()
            supervisor.check()
            reap_adopted(supervisor.pids())
            watcher.poll()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return shut_down(supervisor, upstream)


def shut_down(supervisor: Supervisor, upstream: str) -> int:
    """Cancel in-flight runs (Dagster marks them CANCELED), stop proxy, daemon, webserver and code server,
    then kill whatever of their process tree is left: run workers and step processes included."""

    def say(message: str) -> None:
        print(message, flush=True)

    # Taken first: a stopped child's children are re-parented (to us, the subreaper) and harder to attribute.
    tree = supervisor.pids() | {d for pid in supervisor.pids() for d in descendants(pid)} | descendants(os.getpid())
    codes: dict[str, int] = {}
    try:
        say("\nshutting down: canceling in-flight runs, then the proxy, daemon, webserver and code server "
            "(Ctrl-C again to kill)…")
        cancel_runs(upstream, say)
        codes = supervisor.stop_all(STOP_ORDER)
    except KeyboardInterrupt:
        say("second Ctrl-C: killing everything now")
        supervisor.kill_all()
    finally:
        kill_leftovers(tree | descendants(os.getpid()), say)
        reap_adopted(set())
    say("stopped; no process left behind")
    failed = {name: code for name, code in codes.items() if code not in (0, -signal.SIGINT, 130, 1)}
    return next(iter(failed.values()), 0)
