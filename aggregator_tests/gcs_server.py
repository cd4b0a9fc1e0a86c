"""A real Google Cloud Storage JSON-API server on loopback for `gs://` tests: gcp-storage-emulator (a pure-Python
implementation of the GCS JSON and upload APIs, from PyPI) as a subprocess in its own process group, stopped in
`finally`; and an OAuth token endpoint that checks a service account's signed JWT grant, as Google's does.

The emulator does not check credentials, so what a credential does is tested at the token endpoint: the
connector must exchange its key for a read-only access token there, and a refused key must fail the read."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from aggregator_tests.processes import free_port, stop_group


@dataclass(frozen=True)
class GcsServer:
    endpoint: str  # http://127.0.0.1:<port>

    def filesystem(self) -> Any:
        """An anonymous gcsfs client of the emulator (test set-up and checks)."""
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(token="anon", endpoint_url=self.endpoint, project="test", skip_instance_cache=True)

    def new_bucket(self, prefix: str = "test") -> str:
        """A fresh bucket for one test."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        answer = httpx.post(f"{self.endpoint}/storage/v1/b", params={"project": "test"}, json={"name": name},
                            timeout=30)
        answer.raise_for_status()
        return name


@contextmanager
def running_gcs_server(log_dir: Path) -> Iterator[GcsServer]:
    port = free_port()
    emulator = Path(sys.executable).with_name("gcp-storage-emulator")
    log = open(log_dir / "gcs-emulator.log", "ab")  # noqa: SIM115 - closed in finally, after the process
    proc = subprocess.Popen([str(emulator), "start", "--port", str(port), "--host", "127.0.0.1", "--in-memory"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{endpoint}/storage/v1/b", params={"project": "test"}, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the GCS emulator did not answer; see {log_dir / 'gcs-emulator.log'}") from None
                time.sleep(0.1)
        yield GcsServer(endpoint)
    finally:
        stop_group(proc)
        log.close()


@dataclass
class TokenEndpoint:
    """A service account's key and the OAuth token endpoint that accepts it; `grants` are the claims of every
    JWT grant it accepted, `refuse` makes it answer 400 invalid_grant as Google does for a revoked key."""

    url: str
    key_json: str
    grants: list[dict[str, Any]] = field(default_factory=list)
    refuse: bool = False


@contextmanager
def token_endpoint() -> Iterator[TokenEndpoint]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = RSAKey.import_key(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    port = free_port()
    endpoint = TokenEndpoint(url=f"http://127.0.0.1:{port}/token", key_json="")
    endpoint.key_json = json.dumps({
        "type": "service_account", "project_id": "test", "private_key_id": secrets.token_hex(8),
        "private_key": pem, "client_email": "loader@test.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": endpoint.url,
    })

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers.get("content-length") or 0)).decode())
            try:
                assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
                claims = jwt.decode(form["assertion"][0], public).claims
                assert not endpoint.refuse
            except Exception:  # noqa: BLE001 - any bad grant is the same answer
                self._answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
                return
            endpoint.grants.append(claims)
            self._answer(200, {"access_token": f"ya29.{secrets.token_urlsafe(16)}", "expires_in": 3600,
                               "token_type": "Bearer"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
