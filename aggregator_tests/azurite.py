"""A real Azure Blob Storage emulator on loopback for az:// tests: Microsoft's Azurite (npm package `azurite`),
installed once into a cache directory with npm, run as a subprocess in its own process group, stopped in
`finally`.

Azurite checks Shared Key signatures, so a wrong account key is refused (403 AuthorizationFailure) as Azure
refuses it. It serves the well-known development account below, published in Azurite's README."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from aggregator_tests.processes import free_port, stop_group

AZURITE_VERSION = "3.35.0"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    endpoint: str  # http://127.0.0.1:<port>/devstoreaccount1
    account: str = ACCOUNT
    key: str = ACCOUNT_KEY

    def client(self) -> Any:
        """A blob service client with the account's key (test set-up and checks)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(account_url=self.endpoint, credential={"account_name": self.account,
                                                                         "account_key": self.key})

    def new_container(self, prefix: str = "test") -> str:
        """A fresh container for one test (tests never share one)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        with self.client() as client:
            client.create_container(name)
        return name

    def put(self, container: str, name: str, body: bytes) -> None:
        with self.client() as client:
            client.get_blob_client(container, name).upload_blob(body, overwrite=True)

    def env(self) -> dict[str, str]:
        """The variables the tests' specs read with `{env: NAME}`."""
        return {"TEST_AZURE_ENDPOINT": self.endpoint, "TEST_AZURE_ACCOUNT": self.account,
                "TEST_AZURE_KEY": self.key}


def cache_dir() -> Path:
    base = os.environ.get("AGGREGATOR_TEST_CACHE") or Path.home() / ".cache" / "aggregator-tests"
    return Path(base) / f"azurite-{AZURITE_VERSION}"


def installed_azurite() -> Path:
    """The `azurite-blob` command, `npm install`ed into the cache directory first when missing (once: xdist
    workers wait on a file lock)."""
    target = cache_dir()
    command = target / "node_modules" / ".bin" / "azurite-blob"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not command.exists():
            done = subprocess.run(["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund",
                                   "--no-save", f"azurite@{AZURITE_VERSION}"],
                                  capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0 or not command.exists():
                raise RuntimeError(f"npm install azurite@{AZURITE_VERSION} failed: {done.stderr[-2000:]}")
    return command




@contextmanager
def running_azurite(state: Path) -> Iterator[Azurite]:
    """Start Azurite's blob service on a free loopback port with its data in `state`."""
    command = installed_azurite()
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "azurite.log", "ab") as log:
        proc = subprocess.Popen([str(command), "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                 "--location", str(state / "data"), "--skipApiVersionCheck", "--disableTelemetry"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {proc.returncode}; see {state / 'azurite.log'}")
            try:
                httpx.get(f"{endpoint}?comp=list", timeout=2)
                break  # any answer (403 without a signature) means it serves
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Azurite on {endpoint} did not answer in 60 s; see {state / 'azurite.log'}")
            time.sleep(0.1)
        yield Azurite(endpoint)
    finally:
        stop_group(proc)
