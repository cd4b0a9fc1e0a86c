"""What a user waits for around the data: run overhead of the platform's DEFAULT executor, measured.

1. Materialize every bundled sample asset with `dagster asset materialize --select '*'` — whatever executor
   the code location defines by default — next to the same assets executed in process
   (`execute_in_process`, which always runs every step in the calling process). Goal: default <= 1.5x.
2. Launch the `sales` pipeline's job through GraphQL against `dagster dev` (webserver + daemon with the
   shipped instance config: QueuedRunCoordinator), from queued to success, next to the same job in process.
   Goal: <= 3x.

Each case runs in a fresh AGGREGATOR_HOME and DAGSTER_HOME (the shipped aggregator/dagster.yaml), so no run
sees another's warehouse or file-tracking state; wall times include Python start-up and loading the specs,
as a user's command does.

    python bench/run_overhead.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import common
import requests

LOCATION = "aggregator.definitions"
SALES_JOB = "sales_job"
LAUNCH = """mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { __typename
  ... on Run { status creationTime startTime endTime } } }"""
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

IN_PROCESS = """
import json, sys, time
import dagster as dg
from aggregator.definitions import defs as load_defs
job_name = sys.argv[1]
defs = load_defs()
job = defs.resolve_implicit_global_asset_job_def() if job_name == "*" else defs.resolve_job_def(job_name)
with dg.DagsterInstance.get() as instance:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=True)
    seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "steps": len(result.get_step_success_events())}))
"""


@contextmanager
def fresh_home() -> Iterator[dict[str, str]]:
    """The environment `aggregator dev` gives its children, in a throwaway directory."""
    work = Path(tempfile.mkdtemp(prefix="bench_run_overhead_"))
    try:
        dagster_home = work / "dagster"
        dagster_home.mkdir()
        shutil.copyfile(common.ROOT / "aggregator" / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {**os.environ, "AGGREGATOR_HOME": str(work), "DAGSTER_HOME": str(dagster_home),
               "PYTHONPATH": str(common.ROOT)}
        env.pop("AGGREGATOR_WAREHOUSE_URL", None)
        env.pop("AGGREGATOR_PIPELINES", None)  # the bundled samples
        yield env
    finally:
        shutil.rmtree(work, ignore_errors=True)


def default_executor_all() -> float:
    """`dagster asset materialize --select '*'`: the CLI a user runs, with the code location's default executor."""
    with fresh_home() as env:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "--select", "*", "-m", LOCATION],
                       env=env, cwd=env["AGGREGATOR_HOME"], check=True, capture_output=True)
        return time.perf_counter() - started


def in_process(job: str) -> tuple[float, float]:
    """(wall seconds of the whole command, seconds of execute_in_process alone) for `job` ('*': all assets)."""
    with fresh_home() as env:
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", IN_PROCESS, job], env=env, cwd=env["AGGREGATOR_HOME"],
                             check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
        return wall, float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def daemon_launch(timeout_s: float) -> dict[str, float]:
    """Launch sales_job over GraphQL against `dagster dev`; the run's own timestamps say how long it took
    from creation (queued) to its end, and how much of that was spent waiting to start."""
    with fresh_home() as env:
        port = common.free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", LOCATION, "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=env["AGGREGATOR_HOME"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            deadline = time.monotonic() + timeout_s
            while True:  # the code location is loaded when the webserver answers a launch
                if proc.poll() is not None:
                    raise RuntimeError("dagster dev exited")
                try:
                    answer = requests.post(url, json={"query": LAUNCH, "variables": {"p": {"selector": {
                        "jobName": SALES_JOB, "repositoryName": "__repository__",
                        "repositoryLocationName": LOCATION}}}}, timeout=30).json()
                    launched = answer["data"]["launchRun"]
                    if launched["__typename"] == "LaunchRunSuccess":
                        run_id = launched["run"]["runId"]
                        break
                except (requests.RequestException, KeyError, TypeError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("dagster dev did not accept the launch")
                time.sleep(0.5)
            while True:
                run = requests.post(url, json={"query": RUN, "variables": {"id": run_id}}, timeout=30).json()
                record = run["data"]["runOrError"]
                if record.get("status") in TERMINAL:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"run {run_id} did not finish within {timeout_s:.0f}s")
                time.sleep(0.25)
            if record["status"] != "SUCCESS":
                raise RuntimeError(f"run {run_id} ended {record['status']}")
            return {"queued_to_success": record["endTime"] - record["creationTime"],
                    "queued_to_start": record["startTime"] - record["creationTime"],
                    "start_to_success": record["endTime"] - record["startTime"]}
        finally:
            common.stop_process(proc, grace_s=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1, help="measure each case this many times (best is kept)")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    print(f"start: {common.load_note()}")
    default_s = min(default_executor_all() for _ in range(args.repeat))
    all_in_process = min((in_process("*") for _ in range(args.repeat)), key=lambda r: r[0])
    daemon = min((daemon_launch(args.timeout) for _ in range(args.repeat)), key=lambda r: r["queued_to_success"])
    sales_in_process = min((in_process(SALES_JOB) for _ in range(args.repeat)), key=lambda r: r[1])
    print(f"end: {common.load_note()}")

    print("\n| case | seconds |")
    print("|---|---:|")
    print(f"| all sample assets, `dagster asset materialize --select '*'` (default executor), wall | {default_s:.2f} |")
    print(f"| all sample assets, execute_in_process, wall (same start-up and spec loading) | {all_in_process[0]:.2f} |")
    print(f"| all sample assets, execute_in_process, the run alone | {all_in_process[1]:.2f} |")
    print(f"| sales_job via GraphQL + daemon: queued -> success | {daemon['queued_to_success']:.2f} |")
    print(f"| ... of which queued -> started (dequeue, launch, run worker start-up) | {daemon['queued_to_start']:.2f} |")
    print(f"| ... of which started -> success | {daemon['start_to_success']:.2f} |")
    print(f"| sales_job execute_in_process, the run alone | {sales_in_process[1]:.2f} |")
    print()
    first = default_s / all_in_process[0]
    common.goal("default executor / in-process, all sample assets (wall)", first, "<= 1.5", first <= 1.5)
    second = daemon["queued_to_success"] / sales_in_process[1]
    common.goal("sales_job through the daemon (queued -> success) / in process", second, "<= 3.0", second <= 3)


if __name__ == "__main__":
    main()
