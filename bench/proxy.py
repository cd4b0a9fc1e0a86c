"""GraphQL throughput and latency through the proxy vs directly against the webserver, in the same run.

    python bench/proxy.py [--seconds 5] [--concurrency 8] [--rounds 3]

Starts a dagster-webserver and the proxy (`aggregator proxy`, its own process so it does not share the
load generator's GIL), then alternates direct and proxied rounds so both see the same machine load.
Targets: proxied throughput >= 90% of direct, added p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

QUERY = {"query": "query Bench { version repositoriesOrError { __typename } }"}
INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process from /proc (Linux), to show what each proxied request costs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                resp = await client.post(url, json=QUERY, headers=headers)
                latencies.append(time.perf_counter() - start)
                if resp.status_code != 200:
                    raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"rps": len(ordered) / seconds, "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env.update(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
               AGGREGATOR_ADMIN_PASSWORD="bench-admin-password",
               # The per-token rate limit would otherwise be what is measured.
               AGGREGATOR_PROXY_GRAPHQL_RATE="1000000", AGGREGATOR_PROXY_GRAPHQL_BURST="1000000")
    web_port, proxy_port = free_port(), free_port()
    direct = f"http://127.0.0.1:{web_port}"
    proxied = f"http://127.0.0.1:{proxy_port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m", "aggregator.definitions",
                               "-h", "127.0.0.1", "-p", str(web_port)], env=env, cwd=home,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait(f"{direct}/server_info")
        procs.append(subprocess.Popen([sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", direct,
                                       "--port", str(proxy_port)], env=env, cwd=home))
        wait(f"{proxied}/server_info")
        from aggregator.proxy.server import open_store

        store, _ = open_store(f"sqlite:///{home / 'proxy.db'}")
        token, _ = store.create_token("admin", description="bench")
        auth = {"Authorization": f"Bearer {token}"}
        asyncio.run(one_round(f"{direct}/graphql", {}, 1, args.concurrency))  # warm up both paths
        asyncio.run(one_round(f"{proxied}/graphql", auth, 1, args.concurrency))
        results: dict[str, list[float]] = {"direct": [], "proxy": []}
        proxy_cpu_start = cpu_seconds(procs[1].pid)
        for _ in range(args.rounds):
            results["direct"] += asyncio.run(one_round(f"{direct}/graphql", {}, args.seconds, args.concurrency))
            results["proxy"] += asyncio.run(one_round(f"{proxied}/graphql", auth, args.seconds, args.concurrency))
        proxy_cpu = cpu_seconds(procs[1].pid) - proxy_cpu_start
        total = args.seconds * args.rounds
        d, p = summary(results["direct"], total), summary(results["proxy"], total)
        print(f"{'':8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for name, s in (("direct", d), ("proxy", p)):
            print(f"{name:8}{s['rps']:10.1f}{s['p50_ms']:10.2f}{s['p99_ms']:10.2f}")
        ratio, added = p["rps"] / d["rps"], p["p50_ms"] - d["p50_ms"]
        print(f"proxy process CPU per proxied request: {proxy_cpu / len(results['proxy']) * 1000:.2f} ms "
              f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        ok = ratio >= 0.9 and added <= 2.0
        print(f"throughput ratio {ratio:.1%} (target >= 90%), added p50 {added:+.2f} ms (target <= 2 ms): "
              f"{'PASS' if ok else 'MISS'}")
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
