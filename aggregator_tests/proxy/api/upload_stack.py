"""The proxy as a real process (`aggregator proxy`) over a specs directory with a file sensor, for upload tests
that kill it, restart it and change its upload limits. Uploads need no webserver: the upstream is a real HTTP
server answering only `/server_info`, so the proxy's starting gate lets requests through."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aggregator.proxy.config import proxy_db_url
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import free_port, stop_process, wait_http

SPEC = """pipelines:
  - name: drop
    sensor: {directory: inbox, pattern: "*.csv"}
    sources: []
  - name: other
    sensor: {directory: other, pattern: "*.csv"}
    sources: []
  - name: plain
    sources: []
"""

USERS: dict[str, tuple[Role, list[str] | None]] = {
    "ann": (Role.launcher, None), "bob": (Role.launcher, None), "cy": (Role.launcher, None),
    "ed": (Role.editor, ["drop"]), "other_ed": (Role.editor, ["other"]),
}


def upstream_app() -> Starlette:
    async def info(_request: Request) -> JSONResponse:
        return JSONResponse({"dagster_webserver_version": "test"})

    return Starlette(routes=[Route("/server_info", info)])


@dataclass
class UploadStack:
    home: Path
    env: dict[str, str]
    upstream: str
    tokens: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def root(self) -> Path:
        return self.home / "uploads"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    def start(self, **extra_env: str) -> None:
        port = free_port()
        env = {**self.env, **extra_env}
        with open(self.home / "proxy.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator.cli", "proxy", "--upstream", self.upstream,
                 "--port", str(port)], env=env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{self.url}/api/openapi.json", self.proc, timeout_s=120)
        except BaseException:
            # A proxy that never answered is still a process: without this it outlived the suite (orphaned).
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def put(self, who: str, name: str, data: bytes, first: int, total: int, pipeline: str = "drop") -> httpx.Response:
        return httpx.put(f"{self.url}/api/uploads/{pipeline}/{name}", content=data, timeout=60, headers={
            "Authorization": f"Bearer {self.tokens[who]}", "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}"})

    def request(self, who: str, method: str, name: str, pipeline: str = "drop") -> httpx.Response:
        return httpx.request(method, f"{self.url}/api/uploads/{pipeline}/{name}", timeout=60,
                             headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def staged(self) -> list[str]:
        """Every file and upload directory in the staging area, except its lock and the delivered ledger."""
        base = self.root / ".staging"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*")
                      if (p.is_file() or len(p.relative_to(base).parts) > 2)
                      and p.name != "quota.lock" and "delivered" not in p.relative_to(base).parts)


def make_stack(tmp: Path, upstream: str, **limits: str) -> UploadStack:
    home = tmp / "home"
    specs = home / "specs"
    specs.mkdir(parents=True)
    (specs / "drop.yaml").write_text(SPEC)
    store, _ = open_store(proxy_db_url(home, environ={}))
    stack = UploadStack(home, {}, upstream)
    for user, (role, scope) in USERS.items():
        store.add_user(user, "pw-" + user + "-long-enough", role, scope=scope)
        stack.tokens[user], _ = store.create_token(user)
    store.engine.dispose()
    stack.env = platform_env()
    stack.env.update(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), **limits)
    return stack
