"""Start-up of `aggregator dev` against `dagster dev` on the same code location, side by side.

Goal (issue 20): from the command to "is up" within 1.5x what `dagster dev` takes. "Is up" means the same for
both: the webserver answers and the code location `aggregator.definitions` has loaded. For `dagster dev` that
is /server_info answering plus the location's LOADED status over GraphQL; for `aggregator dev` it is its own
"Data Aggregator is up" line, printed once the proxy answers /server_info through to the webserver and the
code server listens (it listens only once the location has loaded). Each round starts both from a fresh home;
the order alternates so neither always gets the warmer page cache.

    python bench/dev_startup.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, load_note, stop_process  # the other bench scripts import it the same way

ROOT = Path(__file__).resolve().parents[1]
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
  locationOrLoadError { __typename } } } } }"""
TIMEOUT_S = 900


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env["AGGREGATOR_HOME"] = str(home)
    return env


def dagster_dev(home: Path) -> float:
    """`dagster dev -m aggregator.definitions` on the shipped instance config, until the location is loaded."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copyfile(ROOT / "aggregator" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {**_env(home), "DAGSTER_HOME": str(dagster_home)}
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "aggregator.definitions", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        while time.perf_counter() - started < TIMEOUT_S:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {proc.returncode}")
            try:
                body = requests.post(f"{url}/graphql", json={"query": LOCATION}, timeout=5).json()
                entries = body["data"]["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return time.perf_counter() - started
            except (requests.RequestException, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.1)
        raise RuntimeError("dagster dev was not up in time")
    finally:
        stop_process(proc)  # type: ignore[arg-type]


def aggregator_dev(home: Path) -> float:
    """`aggregator dev` until it prints that it is up."""
    port = free_port()
    up = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "dev", "--port", str(port)], env=_env(home), cwd=home,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen: list[float] = []

    def _read() -> None:
        for line in proc.stdout or ():
            if "Data Aggregator is up" in line and not up.is_set():
                seen.append(time.perf_counter() - started)
                up.set()

    reader = threading.Thread(target=_read, daemon=True)
    reader.start()
    try:
        while not up.wait(0.1):
            if proc.poll() is not None:
                raise RuntimeError(f"aggregator dev exited with {proc.returncode}")
            if time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError("aggregator dev was not up in time")
        return seen[0]
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        reader.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    before = load_note()
    times: dict[str, list[float]] = {"dagster dev": [], "aggregator dev": []}
    for round_no in range(args.rounds):
        order = [("dagster dev", dagster_dev), ("aggregator dev", aggregator_dev)]
        for name, start in order if round_no % 2 == 0 else order[::-1]:
            with tempfile.TemporaryDirectory(prefix="dev-startup-") as tmp:
                times[name].append(start(Path(tmp)))
                print(f"round {round_no + 1}: {name} up in {times[name][-1]:.1f} s", flush=True)
    dagster_s = statistics.median(times["dagster dev"])
    aggregator_s = statistics.median(times["aggregator dev"])
    print(f"\n| command | command -> is up (median of {args.rounds}) |\n|---|---|")
    print(f"| `dagster dev -m aggregator.definitions` | {dagster_s:.1f} s |")
    print(f"| `aggregator dev` | {aggregator_s:.1f} s |")
    print(f"\nratio aggregator dev / dagster dev: {aggregator_s / dagster_s:.2f} (goal: at most 1.5)")
    print(f"machine before: {before}; after: {load_note()}")


if __name__ == "__main__":
    main()
