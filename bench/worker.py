"""Capacity of one worker process (`aggregator worker`): calls per second, latency and CPU per call.

    python bench/worker.py [--seconds 10] [--concurrency 1 4 8] [--action check preview-source preview-transform]

Starts one worker on a spec with a local files connection (a 1,000-row CSV), then drives each action at each
concurrency for `--seconds` with an httpx client in this process, and prints calls/s, p50/p95 latency and the
worker's CPU seconds per call (from /proc, so the load generator's own CPU is not counted). Each call runs in a
child process of the worker (its sandbox: deadline, memory cap), so the per-call cost is mostly that process.
For docs/scaling.md: the worker row's measured capacity. Prints the machine's load average with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import free_port, load_note, stop_process  # the other bench scripts import it the same way
from proxy import wait

from aggregator.worker.launch import new_token, start_worker, worker_env

SPEC = """
connections:
  local:
    type: files
    config: {base_dir: data}
pipelines:
  - name: bench
    sources:
      - name: orders
        connection: local
        stream: {type: file, path: orders.csv}
    transforms:
      - name: by_region
        sql: "SELECT region, count(*) AS orders, sum(amount) AS revenue FROM {{ ref('orders') }} GROUP BY region"
"""
PAYLOADS = {
    "check": {"connection": "local"},
    "preview-source": {"pipeline": "bench", "source": "orders", "limit": 20},
    "preview-transform": {"pipeline": "bench", "transform": "by_region", "source_rows": 1000},
}


async def drive(url: str, token: str, action: str, seconds: float, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await client.post(f"{url}/v1/{action}", json=PAYLOADS[action],
                                         headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 200:
                latencies.append(time.monotonic() - started)
            else:
                failures += 1

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--action", nargs="+", default=list(PAYLOADS), choices=list(PAYLOADS))
    parser.add_argument("--worker-concurrency", type=int, default=4,
                        help="AGGREGATOR_WORKER_CONCURRENCY: calls the worker runs at once (its default, 4).")
    args = parser.parse_args()
    print(f"start: {load_note()}")
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        root = Path(tmp)
        (root / "specs" / "data").mkdir(parents=True)
        (root / "specs" / "bench.yaml").write_text(SPEC)
        lines = ["id,region,amount"] + [f"{i},{('north', 'south', 'east', 'west')[i % 4]},{i * 1.5}"
                                        for i in range(1000)]
        (root / "specs" / "data" / "orders.csv").write_text("\n".join(lines) + "\n")
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "AGGREGATOR_HOME": str(root / "home"),
               "AGGREGATOR_PIPELINES": str(root / "specs"), "AGGREGATOR_DATA_ROOTS": str(root / "specs" / "data"),
               "AGGREGATOR_WORKER_CONCURRENCY": str(args.worker_concurrency)}
        token, port = new_token(), free_port()
        proc = start_worker(worker_env(env, token, [], []), root, port)
        try:
            wait(f"http://127.0.0.1:{port}/health")
            url = f"http://127.0.0.1:{port}"
            asyncio.run(drive(url, token, "check", 2, 1))  # warm-up
            print("| action | concurrency | calls | failures | calls/s | p50 ms | p95 ms | worker CPU ms/call |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for action in args.action:
                for concurrency in args.concurrency:
                    cpu_before = cpu_seconds_tree(proc.pid)
                    started = time.monotonic()
                    latencies, failures = asyncio.run(drive(url, token, action, args.seconds, concurrency))
                    elapsed = time.monotonic() - started
                    cpu = cpu_seconds_tree(proc.pid) - cpu_before
                    calls = len(latencies)
                    ordered = sorted(latencies)
                    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else float("nan")
                    print(f"| {action} | {concurrency} | {calls} | {failures} | {calls / elapsed:.1f} | "
                          f"{statistics.median(ordered) * 1000 if ordered else float('nan'):.0f} | "
                          f"{p95 * 1000:.0f} | {cpu * 1000 / max(calls, 1):.0f} |")
        finally:
            stop_process(proc)
    print(f"end: {load_note()}")


def cpu_seconds_tree(pgid: int) -> float:
    """CPU of every process in the worker's process group (the worker, its fork server) plus what each has
    reaped (the per-call processes the fork server forked): utime + stime + cutime + cstime."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
