"""An admin's `{ version }` latency while the proxy is abused (issue 9, findings 4 and 6).

    python bench/proxy_abuse.py [--seconds 10]

Starts a dagster-webserver and the proxy (`aggregator proxy`, its own process), then measures an admin's
`{ version }` latency (one request at a time, with a fresh token so the first look-up hits the store):
- quiet: nothing else running (the baseline);
- login flood: 60 concurrent anonymous sign-ins for unknown users from 4 loopback addresses
  (127.0.0.2-5, each under the per-address limit), repeated for the whole phase;
- alias documents: 3 concurrent 57 KB documents of 1,500 aliased `runOrError` fields from a viewer, each one
  different (no cache hit), repeated for the whole phase.
Target: p99 < 0.5 s in every phase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import INSTANCE_YAML, free_port, wait

TARGET_P99_S = 0.5
SOURCES = [f"127.0.0.{i}" for i in range(2, 6)]


def alias_document(salt: str, n: int = 1500) -> str:
    return "{ " + " ".join(f'{salt}{i}: runOrError(runId: "r{i}") {{ __typename }}' for i in range(n)) + " }"


async def probe(url: str, token: str, stop: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as client:
        while not stop.is_set():
            start = time.perf_counter()
            resp = await client.post(f"{url}/graphql", json={"query": "{ version }"},
                                     headers={"Authorization": f"Bearer {token}"})
            latencies.append(time.perf_counter() - start)
            if resp.status_code != 200:
                raise RuntimeError(f"admin read failed: {resp.status_code} {resp.text[:200]}")
            await asyncio.sleep(0.05)
    return latencies


async def login_flood(url: str, stop: asyncio.Event, codes: dict[int, int]) -> None:
    clients = [httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=s), timeout=300) for s in SOURCES]

    async def one(i: int) -> None:
        resp = await clients[i % 4].post(f"{url}/_auth/login", headers={"origin": url},
                                         data={"username": f"nobody-{uuid.uuid4().hex[:8]}", "password": "guess"})
        codes[resp.status_code] = codes.get(resp.status_code, 0) + 1

    try:
        while not stop.is_set():
            await asyncio.gather(*(one(i) for i in range(60)))
    finally:
        for c in clients:
            await c.aclose()


async def alias_flood(url: str, token: str, stop: asyncio.Event, codes: dict[int, int]) -> None:
    async with httpx.AsyncClient(timeout=300) as client:

        async def one() -> None:
            resp = await client.post(f"{url}/graphql", json={"query": alias_document(f"a{uuid.uuid4().hex[:6]}_")},
                                     headers={"Authorization": f"Bearer {token}"})
            codes[resp.status_code] = codes.get(resp.status_code, 0) + 1

        while not stop.is_set():
            await asyncio.gather(one(), one(), one())


async def phase(name: str, url: str, admin: str, seconds: float, attack: object | None) -> list[float]:
    stop = asyncio.Event()
    codes: dict[int, int] = {}
    tasks = []
    if attack is not None:
        tasks.append(asyncio.create_task(attack(stop, codes)))  # type: ignore[operator]
        await asyncio.sleep(0.5)  # the attack is under way before the first probe
    prober = asyncio.create_task(probe(url, admin, stop))
    await asyncio.sleep(seconds)
    stop.set()
    latencies = await prober
    await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    p50, p99 = statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.99) - 1)]
    verdict = "PASS" if p99 < TARGET_P99_S else "MISS"
    print(f"{name:16}{len(ordered):8d}{p50 * 1000:10.1f}{p99 * 1000:10.1f}{max(ordered) * 1000:10.1f}  {verdict}"
          f"  attacker answers: {dict(sorted(codes.items())) or '-'}", flush=True)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-abuse-"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AGGREGATOR_"))}
    env.update(AGGREGATOR_HOME=str(home), DAGSTER_HOME=str(home / "dagster"),
               AGGREGATOR_ADMIN_PASSWORD=secrets.token_urlsafe(16))
    web_port, proxy_port = free_port(), free_port()
    direct, proxied = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{proxy_port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-m", "aggregator.definitions",
                               "-h", "127.0.0.1", "-p", str(web_port)], env=env, cwd=home,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        wait(f"{direct}/server_info")
        procs.append(subprocess.Popen([sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", direct,
                                       "--port", str(proxy_port)], env=env, cwd=home, start_new_session=True))
        wait(f"{proxied}/healthz")
        from aggregator.proxy.policy.rbac import Role
        from aggregator.proxy.server import open_store

        store, _ = open_store(f"sqlite:///{home / 'proxy.db'}")
        store.add_user("mallory", "mallory-password-123", Role.viewer)
        viewer, _ = store.create_token("mallory")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        print(f"{'phase':16}{'probes':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
        results = []
        for name, attack in (
            ("quiet", None),
            ("login flood", lambda stop, codes: login_flood(proxied, stop, codes)),
            ("alias documents", lambda stop, codes: alias_flood(proxied, viewer, stop, codes)),
        ):
            admin, _ = store.create_token("admin", description=f"bench {name}")
            results.append(asyncio.run(phase(name, proxied, admin, args.seconds, attack)))
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        worst = max(sorted(r)[max(0, int(len(r) * 0.99) - 1)] for r in results)
        return 0 if worst < TARGET_P99_S else 1
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
