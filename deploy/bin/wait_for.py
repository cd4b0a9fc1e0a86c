"""Wait for a service's dependencies, then exec its command:  wait_for.py [checks] -- command args...

Compose's `depends_on: condition: service_healthy` is not honoured by every engine; without it the stack only
converges through crash-restart loops. Each container therefore waits itself, with bounded retries and one clear
log line per attempt, and exits non-zero (naming what it waited for) when the dependency never comes.

Checks (any number, in order):
  --postgres ENV   connect with the SQLAlchemy/libpq URL in environment variable ENV (the URL is never printed)
  --schema ENV     ... and wait until the Dagster schema exists there (`dagster instance migrate` has run)
  --tcp HOST:PORT  a TCP connection succeeds
  --http URL       a GET returns 2xx

Before any check it refuses to start when a secret in its environment is a placeholder (`change-me…`, see
PLACEHOLDER): an old `.env` copied from an example would otherwise bring a stack up with a published password.
Compose's `${VAR:?}` only catches empty values; this catches the known fake ones, naming the variable.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

# Tables the last storage of `dagster instance migrate` creates (schedule storage comes after run and event log
# storage): their presence means the whole schema is there.
SCHEMA_TABLES = ("runs", "event_logs", "jobs", "job_ticks", "instigators", "alembic_version")


# Values that example files and tutorials put where a secret goes. postgres-init/00-refuse-placeholders.sh refuses the same ones
# before PostgreSQL creates the roles (aggregator_tests/deploy/test_placeholder_secrets.py runs both on one corpus).
PLACEHOLDER = re.compile(r"(change|replace|fill)[-_ ]?me.*|password|secret|placeholder", re.IGNORECASE)
# Variables that hold a secret: by name, or a URL whose password part is one.
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET")


def placeholder_secrets(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Names of the variables in `environ` whose secret is a placeholder (never their values)."""
    found = []
    for name, value in sorted(environ.items()):
        if SECRET_NAME.search(name):
            secret = value
        elif "://" in value:
            secret = urlsplit(value).password or ""
        else:
            continue
        if secret and PLACEHOLDER.fullmatch(secret.strip()):
            found.append(name)
    return found


def refuse_placeholders(environ: dict[str, str] | os._Environ[str]) -> None:
    names = placeholder_secrets(environ)
    if names:
        raise SystemExit(f"wait_for: refusing to start: {', '.join(names)} hold(s) a placeholder secret "
                         "(change-me…): set a real value (e.g. `openssl rand -hex 24`) in deploy/.env or the "
                         "Kubernetes Secret, and for a database role also ALTER ROLE … PASSWORD")


def log(message: str) -> None:
    print(f"wait_for: {message}", file=sys.stderr, flush=True)


def _psycopg_url(url: str) -> str:
    # SQLAlchemy spells the driver into the scheme (postgresql+psycopg://); libpq does not.
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        raise SystemExit(f"wait_for: environment variable {env} is not set (it must hold the database URL)")
    return _psycopg_url(url)


def _where(url: str) -> str:
    """host:port/database, without user or password: safe to log."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def postgres_ready(env: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    url = _url(env)

    def check() -> None:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")

    return f"PostgreSQL at {_where(url)} (${env})", check


def schema_ready(env: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    url = _url(env)

    def check() -> None:
        with psycopg.connect(url, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = ANY(%s)", (list(SCHEMA_TABLES),)
            ).fetchall()
        missing = set(SCHEMA_TABLES) - {name for (name,) in rows}
        if missing:
            raise RuntimeError(f"Dagster schema incomplete, missing {sorted(missing)}: has `dagster instance migrate` run?")

    return f"Dagster schema at {_where(url)} (${env})", check


def tcp_ready(target: str) -> tuple[str, Callable[[], None]]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"wait_for: --tcp {target!r}: expected HOST:PORT, e.g. code-server:4000")

    def check() -> None:
        socket.create_connection((host, int(port)), timeout=5).close()

    return f"TCP {target}", check


def http_ready(url: str) -> tuple[str, Callable[[], None]]:
    if urlsplit(url).scheme not in ("http", "https"):
        raise SystemExit(f"wait_for: --http {url!r}: expected an http(s) URL")

    def check() -> None:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (scheme checked to be http(s) above)
            if not 200 <= response.status < 300:
                raise RuntimeError(f"HTTP {response.status}")

    return f"HTTP {url}", check


def wait(name: str, check: Callable[[], None], attempts: int, delay: float) -> None:
    for attempt in range(1, attempts + 1):
        try:
            check()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if attempt == attempts:
                raise SystemExit(f"wait_for: gave up on {name} after {attempts} attempts; last error: {reason}") from exc
            log(f"waiting for {name} (attempt {attempt}/{attempts}): {reason}")
            time.sleep(delay)
        else:
            log(f"{name} is ready")
            return


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        raise SystemExit("wait_for: usage: wait_for.py [--postgres ENV] [--schema ENV] [--tcp H:P] [--http URL] -- cmd")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="wait_for.py")
    parser.add_argument("--postgres", action="append", default=[], metavar="ENV")
    parser.add_argument("--schema", action="append", default=[], metavar="ENV")
    parser.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT")
    parser.add_argument("--http", action="append", default=[], metavar="URL")
    parser.add_argument("--attempts", type=int, default=int(os.environ.get("WAIT_FOR_ATTEMPTS", "60")))
    parser.add_argument("--delay", type=float, default=float(os.environ.get("WAIT_FOR_DELAY", "2")))
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        raise SystemExit("wait_for: no command after `--`")
    refuse_placeholders(os.environ)
    checks = ([postgres_ready(e) for e in args.postgres] + [schema_ready(e) for e in args.schema]
              + [tcp_ready(t) for t in args.tcp] + [http_ready(u) for u in args.http])
    for name, check in checks:
        wait(name, check, args.attempts, args.delay)
    os.execvp(command[0], command)  # noqa: S606 (exec the container's own command line, as given after --)


if __name__ == "__main__":
    main()
