"""GraphQL throughput and latency through the proxy vs directly against the webserver, in the same run.

    python bench/proxy.py [--seconds 5] [--concurrency 10] [--rounds 3] [--tool wrk|httpx]

Starts a dagster-webserver and the proxy (`aggregator proxy`, its own process so it does not share the
load generator's GIL), then alternates direct and proxied rounds so both see the same machine load.
The load generator is `wrk` with a Lua POST script when installed (`apt-get install wrk`; a C client, so the
generator's own CPU does not distort the ratio), else an httpx loop.
Targets: proxied throughput >= 90% of direct, added p50 <= 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
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


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_round(url: str, token: str | None, seconds: float, concurrency: int, workdir: Path) -> dict[str, float]:
    """One wrk run: requests/s and p50/p99 in ms (wrk's own latency distribution)."""
    script = workdir / ("proxy.lua" if token else "direct.lua")
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script.write_text(WRK_SCRIPT.format(body=json.dumps(json.dumps(QUERY)), auth=auth))
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not on PATH: `apt-get install wrk`, or run with --tool httpx")
    done = subprocess.run([wrk, "-t", "2", "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
                           "--latency", "-s", str(script), url], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: wrk saw non-2xx answers:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def mean_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.fmean(r[k] for r in rounds) for k in rounds[0]}


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"rps": len(ordered) / seconds, "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tool", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env.update(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
               AGGREGATOR_ADMIN_PASSWORD=secrets.token_urlsafe(16),
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
        wait(f"{proxied}/healthz")
        from aggregator.proxy.server import open_store

        store, _ = open_store(f"sqlite:///{home / 'proxy.db'}")
        token, _ = store.create_token("admin", description="bench")
        auth = {"Authorization": f"Bearer {token}"}
        asyncio.run(one_round(f"{direct}/graphql", {}, 1, args.concurrency))  # warm up both paths
        asyncio.run(one_round(f"{proxied}/graphql", auth, 1, args.concurrency))
        results: dict[str, list[float]] = {"direct": [], "proxy": []}
        wrk_results: dict[str, list[dict[str, float]]] = {"direct": [], "proxy": []}
        proxy_cpu_start = cpu_seconds(procs[1].pid)
        for _ in range(args.rounds):
            if args.tool == "wrk":
                wrk_results["direct"].append(wrk_round(f"{direct}/graphql", None, args.seconds, args.concurrency,
                                                       home))
                wrk_results["proxy"].append(wrk_round(f"{proxied}/graphql", token, args.seconds, args.concurrency,
                                                      home))
                continue
            results["direct"] += asyncio.run(one_round(f"{direct}/graphql", {}, args.seconds, args.concurrency))
            results["proxy"] += asyncio.run(one_round(f"{proxied}/graphql", auth, args.seconds, args.concurrency))
        proxy_cpu = cpu_seconds(procs[1].pid) - proxy_cpu_start
        total = args.seconds * args.rounds
        if args.tool == "wrk":
            d, p = mean_rounds(wrk_results["direct"]), mean_rounds(wrk_results["proxy"])
            proxied_requests = p["rps"] * total
        else:
            d, p = summary(results["direct"], total), summary(results["proxy"], total)
            proxied_requests = len(results["proxy"])
        print(f"load generator: {args.tool}, {args.concurrency} connections, {args.rounds} x {args.seconds:g} s")
        print(f"{'':8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for name, s in (("direct", d), ("proxy", p)):
            print(f"{name:8}{s['rps']:10.1f}{s['p50_ms']:10.2f}{s['p99_ms']:10.2f}")
        ratio, added = p["rps"] / d["rps"], p["p50_ms"] - d["p50_ms"]
        print(f"proxy process CPU per proxied request: {proxy_cpu / proxied_requests * 1000:.2f} ms "
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
