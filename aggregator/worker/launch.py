"""Starting a worker as a child process: the environment it gets and how the proxy learns to reach it.

Its environment is the pipelines' (what run workers get, without the proxy's secrets), plus a per-session
random token and what the egress rule must know of the platform that the pipelines' environment lacks: the
platform's own services (never reachable by a connector) and its databases, named without credentials.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from connectors.egress import PROTECTED_DATABASES_ENV, PROTECTED_SERVICES_ENV

TOKEN_ENV, URL_ENV = "AGGREGATOR_WORKER_TOKEN", "AGGREGATOR_WORKER_URL"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def without_credentials(url: str) -> str:
    """`url` with user and password removed: enough to recognize the database, useless to log in."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return ""
    return parsed.set(username=None, password=None, query={}).render_as_string(hide_password=False)


def worker_env(pipelines_env: Mapping[str, str], token: str, services: list[str],
               databases: list[str]) -> dict[str, str]:
    """The worker's environment: the pipelines' plus its token and the platform's protected endpoints."""
    env = dict(pipelines_env)
    env[TOKEN_ENV] = token
    env[PROTECTED_SERVICES_ENV] = ",".join(filter(None, [env.get(PROTECTED_SERVICES_ENV, ""), *services]))
    protected = [without_credentials(u) for u in databases]
    env[PROTECTED_DATABASES_ENV] = ",".join(filter(None, [env.get(PROTECTED_DATABASES_ENV, ""), *protected]))
    return env


def start_worker(env: Mapping[str, str], cwd: Path, port: int, **popen: object) -> subprocess.Popen[bytes]:
    """`aggregator worker` on 127.0.0.1:`port` in its own session (stopped by its process group)."""
    cmd = [sys.executable, "-m", "aggregator.cli", "worker", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, env=dict(env), cwd=cwd, start_new_session=True, **popen)  # type: ignore[call-overload]  # noqa: S603 (argv list, no shell: our interpreter and module)


def new_token() -> str:
    return secrets.token_urlsafe(32)
