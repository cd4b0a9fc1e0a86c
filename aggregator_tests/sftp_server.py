"""A real SFTP server on loopback for the files connector's sftp:// tests: asyncssh's server as a subprocess in
its own process group, stopped in `finally`.

It serves one directory (chrooted: the client's `/` is that directory) to one user, who may log in with a
password or with an Ed25519 key; any other credential is refused. Its host key is made per server, so tests
pin it exactly as an operator would: a known_hosts line or the SHA256 fingerprint.

Run as `python -m aggregator_tests.sftp_server ROOT STATE_DIR`: the state directory holds the keys and the
user's password, and the server writes the port it listens on to `STATE_DIR/port` once it accepts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator_tests.processes import stop_group

USER = "loader"


@dataclass(frozen=True)
class SftpServer:
    host: str
    port: int
    root: Path  # the served directory: `sftp://loader@host:port/x` is `root / "x"`
    username: str
    password: str
    private_key: str  # the user's Ed25519 key, OpenSSH format
    known_hosts: str  # `[127.0.0.1]:PORT ssh-ed25519 AAAA…`
    fingerprint: str  # `SHA256:…`

    def url(self, path: str = "/exports") -> str:
        return f"sftp://{self.username}@{self.host}:{self.port}{path}"

    def env(self) -> dict[str, str]:
        """The variables the tests' specs read with `{env: NAME}`."""
        return {"TEST_SFTP_URL": self.url(), "TEST_SFTP_PASSWORD": self.password,
                "TEST_SFTP_KEY": self.private_key, "TEST_SFTP_KNOWN_HOSTS": self.known_hosts,
                "TEST_SFTP_FINGERPRINT": self.fingerprint}



@contextmanager
def running_sftp_server(state: Path) -> Iterator[SftpServer]:
    """Make keys and a password in `state`, start the server on a free loopback port, yield how to reach it."""
    import asyncssh

    root, state = state / "root", state / "state"
    root.mkdir(parents=True)
    state.mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(state / "host_key"))
    user_key.write_public_key(str(state / "authorized_keys"))
    password = os.urandom(12).hex()
    (state / "password").write_text(password)
    with open(state / "server.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aggregator_tests.sftp_server", str(root), str(state)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not (state / "port").exists():
            if proc.poll() is not None:
                raise RuntimeError(f"SFTP server exited with {proc.returncode}; see {state / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"SFTP server did not listen within 60 s; see {state / 'server.log'}")
            time.sleep(0.05)
        port = int((state / "port").read_text())
        public = host_key.export_public_key("openssh").decode().split()
        yield SftpServer(host="127.0.0.1", port=port, root=root, username=USER, password=password,
                         private_key=user_key.export_private_key("openssh").decode(),
                         known_hosts=f"[127.0.0.1]:{port} {public[0]} {public[1]}",
                         fingerprint=host_key.get_fingerprint("sha256"))
    finally:
        stop_group(proc)


async def _serve(root: Path, state: Path) -> None:
    import asyncssh

    password = (state / "password").read_text()

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, given: str) -> bool:
            return username == USER and given == password

    def sftp(chan: Any) -> asyncssh.SFTPServer:
        return asyncssh.SFTPServer(chan, chroot=str(root).encode())

    server = await asyncssh.listen("127.0.0.1", 0, server_factory=Server, server_host_keys=[str(state / "host_key")],
                                   authorized_client_keys=str(state / "authorized_keys"), sftp_factory=sftp,
                                   allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    (state / "port.tmp").write_text(str(port))
    (state / "port.tmp").rename(state / "port")  # the parent reads a whole number or nothing
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(_serve(Path(sys.argv[1]), Path(sys.argv[2])))
