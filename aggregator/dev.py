"""`aggregator dev`: the Dagster webserver and daemon on the embedded defaults, as one command."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from aggregator.dev_shutdown import cancel_runs, descendants, kill_leftovers
from aggregator.pipelines.snapshot import SNAPSHOT_ENV
from aggregator.settings import PACKAGE_DIR, Settings

SHUTDOWN_GRACE_S = 30


class PortInUseError(RuntimeError):
    """The port `aggregator dev` should listen on is taken."""


def ensure_port_free(host: str, port: int) -> None:
    """Fail early with a clear message rather than letting the webserver die in its logs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
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


def child_env(settings: Settings, dagster_home: Path, proxy: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if proxy or not k.startswith(PROXY_ONLY_ENV)}
    # A spec snapshot inherited from whatever started us must not pin the platform's own code servers.
    env.pop(SNAPSHOT_ENV, None)
    env.update(
        AGGREGATOR_HOME=str(settings.home),
        AGGREGATOR_PIPELINES=str(settings.pipelines_dir),
        AGGREGATOR_WAREHOUSE_URL=settings.warehouse_url,
        DAGSTER_HOME=str(dagster_home),
        # Byte-code caches would otherwise land beside the sources, outside AGGREGATOR_HOME.
        PYTHONPYCACHEPREFIX=str(settings.home / "pycache"),
    )
    return env


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5)
    return False


def stop(proc: subprocess.Popen[bytes]) -> int:
    """Ask `dagster dev` to shut down its webserver, daemon and code servers; force it after a grace period."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(SHUTDOWN_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def internal_port() -> int:
    """A free port on 127.0.0.1 for the webserver: only the proxy talks to it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unspecified(host: str) -> bool:
    """0.0.0.0 / :: (listen everywhere): no address a browser could use."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def start_proxy(settings: Settings, upstream: str, host: str, port: int,
                worker: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The authenticated proxy on the public port (aggregator/proxy); it bootstraps the first admin.
    `worker` is AGGREGATOR_WORKER_URL/TOKEN: the only thing of the worker's the proxy learns."""
    cmd = [sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", upstream, "--host", host, "--port", str(port)]
    env = {**proxy_env(settings, host, port), **(worker or {})}
    return subprocess.Popen(cmd, env=env, cwd=settings.home, start_new_session=True)  # noqa: S603 (argv list, no shell: our interpreter and module)


def start_dev_worker(settings: Settings, dagster_home: Path, services: list[str]) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    """The worker (checks, discovery, previews) with the run workers' environment and a per-session random
    token; returns it and the proxy's settings to reach it. The proxy's databases are named to it without
    credentials, so connectors refuse them."""
    from aggregator.worker.launch import TOKEN_ENV, URL_ENV, free_port, new_token, start_worker, worker_env

    token, port = new_token(), free_port()
    proxy = proxy_env(settings, "127.0.0.1", 0)
    databases = [proxy.get("AGGREGATOR_PROXY_DB_URL") or f"sqlite:///{settings.home / 'proxy.db'}",
                 proxy.get("AGGREGATOR_PLATFORM_DB_URL", "")]
    env = worker_env(child_env(settings, dagster_home), token, [*services, f"127.0.0.1:{port}"], databases)
    return start_worker(env, settings.home, port), {URL_ENV: f"http://127.0.0.1:{port}", TOKEN_ENV: token}


def proxy_env(settings: Settings, host: str, port: int) -> dict[str, str]:
    """The proxy's environment: its secrets, and an explicit public origin so the CSRF check never has to
    guess one (an operator's AGGREGATOR_PROXY_PUBLIC_ORIGIN wins)."""
    env = child_env(settings, settings.home / "dagster", proxy=True)
    browser_host = "localhost" if _unspecified(host) else host
    env.setdefault("AGGREGATOR_PROXY_PUBLIC_ORIGIN", f"http://{browser_host}:{port}")
    return env


def run_dev(settings: Settings, host: str, port: int) -> int:
    ensure_port_free(host, port)
    dagster_home = prepare_home(settings)
    webserver_port = internal_port()
    cmd = [
        # `dagster dev` is superseded by `dg dev`, which needs a dg project; the warning is noise to our users.
        sys.executable, "-W", "ignore:Function `dev_command` is superseded", "-m", "dagster", "dev",
        "-m", "aggregator.definitions",
        # Warnings and errors only: at INFO it prints the private webserver URL, which bypasses sign-in,
        # above the real one, and a line per sensor tick. Run logs are in the UI.
        "--log-level", "warning",
        # Never on the public interface: every request must pass the proxy's authentication.
        "--host", "127.0.0.1", "--port", str(webserver_port),
    ]

    def _forward(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Handlers before spawning: a process started in the background by a shell inherits SIGINT *ignored*,
    # and an ignored signal stays ignored across exec — our children would then never see the SIGINT we
    # forward. A handled signal is reset to the default in the child.
    signal.signal(signal.SIGINT, _forward)
    signal.signal(signal.SIGTERM, _forward)
    # Own session: a terminal Ctrl-C reaches only us, and we forward exactly one SIGINT, which dagster dev
    # treats as a graceful shutdown (a second one would make it abandon its children).
    proc = subprocess.Popen(cmd, env=child_env(settings, dagster_home), cwd=settings.home, start_new_session=True)  # noqa: S603 (argv list, no shell: the dagster CLI of our interpreter)
    proxy: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    upstream = f"http://127.0.0.1:{webserver_port}"
    url = f"http://{host}:{port}"
    try:
        if not wait_until_up(upstream, proc):
            if proc.poll() is None:
                print(f"webserver did not answer on {upstream} in time; still waiting (Ctrl-C to stop)",
                      file=sys.stderr)
            proc.wait()
            return proc.returncode
        worker, worker_settings = start_dev_worker(settings, dagster_home, [f"127.0.0.1:{webserver_port}",
                                                                           f"{host}:{port}"])
        proxy = start_proxy(settings, upstream, host, port, worker_settings)
        if wait_until_up(url, proxy, timeout_s=60):
            print(f"\nData Aggregator is up: {url}  (AGGREGATOR_HOME={settings.home}; Ctrl-C to stop)\n", flush=True)
        # Either child ending ends the platform: a UI without its proxy would be unreachable, and a proxy
        # without a webserver would only answer 502.
        while proc.poll() is None and proxy.poll() is None:
            time.sleep(0.5)
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        return shut_down(proc, proxy, upstream)
    finally:
        if worker is not None and worker.poll() is None:  # it holds no runs: stopped after the others
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()


def shut_down(proc: subprocess.Popen[bytes], proxy: subprocess.Popen[bytes] | None, upstream: str) -> int:
    """Cancel in-flight runs (Dagster marks them CANCELED), stop proxy, webserver and daemon, then kill
    whatever of their process tree is left: code servers, run workers and step processes included."""

    def say(message: str) -> None:
        print(message, flush=True)

    # Taken first: once `dagster dev` exits, its code servers and run workers are re-parented and unfindable.
    tree = descendants(proc.pid) | (descendants(proxy.pid) | {proxy.pid} if proxy is not None else set())
    proxy_code = code = 0
    try:
        say("\nshutting down: canceling in-flight runs, then the proxy, webserver and daemon (Ctrl-C again to kill)…")
        cancel_runs(upstream, say)
        proxy_code = stop(proxy) if proxy is not None else 0
        code = stop(proc)
    except KeyboardInterrupt:
        say("second Ctrl-C: killing everything now")
        for child in (proxy, proc):
            if child is not None and child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    finally:
        kill_leftovers(tree, say)
    say("stopped; no process left behind")
    if proxy_code not in (0, -signal.SIGINT, 130):
        return proxy_code
    return 0 if code in (0, -signal.SIGINT, 130) else code
