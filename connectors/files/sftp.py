"""`sftp://` locations: fsspec's SFTP filesystem over paramiko, with the server's host key pinned.

fsspec's own SFTP filesystem accepts any host key on first contact (paramiko's `AutoAddPolicy`), so a
man-in-the-middle could collect the password and serve forged files. Here the connection must pin the
server's key, as `known_hosts` lines (what `ssh-keyscan -p PORT host` prints) or as SHA256 fingerprints (what
`ssh-keygen -lf` prints); any other key is refused before a credential is sent. Authentication uses only the
password or private key the connection names: no SSH agent, no `~/.ssh` keys of whoever runs the load.
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import weakref
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.egress import check_socket
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.redact import sanitize_url

SFTP_OPTIONS = ("username", "password", "private_key", "private_key_passphrase", "known_hosts",
                "host_key_fingerprint", "port", "timeout")
_PIN_HELP = ("set storage_options.known_hosts to the server's known_hosts line (`ssh-keyscan -p PORT HOST`) or "
             "storage_options.host_key_fingerprint to its SHA256 fingerprint (`ssh-keygen -lf KEYFILE`), taken "
             "from the server's administrator over a trusted channel")


class HostKeyRefused(SourceReadError):
    """The SFTP server presented a host key the connection does not pin."""


def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a paramiko key: `SHA256:` and unpadded base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def _host_keys(text: str, lookup: str) -> Any:
    """paramiko HostKeys holding the `known_hosts` lines that name `lookup` (hashed names included)."""
    import paramiko
    from paramiko.hostkeys import HostKeyEntry, InvalidHostKey

    keys = paramiko.HostKeys()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(line, number)
        except (InvalidHostKey, paramiko.SSHException, ValueError) as exc:  # ValueError: a bad base64 blob
            raise ConnectorConfigError(f"storage_options.known_hosts line {number} is not a known_hosts line "
                                       f"(`host key-type base64-key`): {type(exc).__name__}") from exc
        if entry is None or entry.key is None:
            raise ConnectorConfigError(f"storage_options.known_hosts line {number} is not a known_hosts line "
                                       "(`host key-type base64-key`, as ssh-keyscan prints)")
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)
    found = keys.lookup(lookup)
    pinned = paramiko.HostKeys()
    for key_type, key in (found or {}).items():
        pinned.add(lookup, key_type, key)
    return pinned


def _private_key(text: str, passphrase: str | None) -> Any:
    """The paramiko key in `text` (OpenSSH or PEM; Ed25519, ECDSA or RSA)."""
    import paramiko

    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise ConnectorConfigError("storage_options.private_key is encrypted: set "
                                       "storage_options.private_key_passphrase") from None
        except (paramiko.SSHException, ValueError):
            continue
    raise ConnectorConfigError("storage_options.private_key is not an Ed25519, ECDSA or RSA private key in OpenSSH "
                               "or PEM form (or private_key_passphrase does not open it)")


def _refuse_unpinned(display: str, fingerprints: frozenset[str]) -> Any:
    """A paramiko policy for a host key not in the pinned known_hosts: accept it only by fingerprint."""
    import paramiko

    class PinnedFingerprint(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            if fingerprint(key) in fingerprints:
                return
            raise HostKeyRefused(f"{display}: the server's host key ({key.get_name()} {fingerprint(key)}) is not "
                                 f"pinned by the connection, so it is refused (unknown host keys are never "
                                 f"trusted): {_PIN_HELP}")

    return PinnedFingerprint()


def sftp_filesystem(base: str, options: dict[str, Any], address: str | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, root path) for `sftp://[user@]host[:port]/path` with pinned host keys; the TCP
    connection goes to `address` (the one egress.py checked) and its peer is checked again once connected."""
    display = sanitize_url(base)
    try:
        from fsspec.implementations.sftp import SFTPFileSystem
    except ImportError as exc:
        raise ConnectorConfigError(f"{display}: sftp:// locations need paramiko: install "
                                   "data-aggregator[sftp]") from exc
    parts = urlsplit(base)
    if parts.password is not None:
        raise ConnectorConfigError(f"base_dir {display!r}: put the password in storage_options.password as "
                                   "{env: NAME}, not in the URL")
    host = parts.hostname or ""
    port = parts.port or int(options.get("port") or 22)
    username = options.get("username") or (unquote(parts.username) if parts.username else None)
    if not username:
        raise ConnectorConfigError(f"base_dir {display!r}: name the SFTP user, as sftp://user@host/path or "
                                   "storage_options.username")
    if not (options.get("password") or options.get("private_key")):
        raise ConnectorConfigError(f"{display}: set storage_options.password or storage_options.private_key "
                                   "(as {env: NAME})")
    fingerprints = frozenset(f.strip() for f in str(options.get("host_key_fingerprint") or "").split(",") if f.strip())
    bad = sorted(f for f in fingerprints if not f.startswith("SHA256:"))
    if bad:
        raise ConnectorConfigError(f"storage_options.host_key_fingerprint {bad[0]!r} is not a SHA256 fingerprint "
                                   "(SHA256:… as `ssh-keygen -lf` prints)")
    lookup = host if port == 22 else f"[{host}]:{port}"
    pinned = _host_keys(str(options.get("known_hosts") or ""), lookup)
    if not fingerprints and not pinned.keys():
        why = "names no key for this server" if options.get("known_hosts") else "pins no host key"
        raise ConnectorConfigError(f"{display}: the connection {why} ({lookup}); unknown host keys are refused: "
                                   f"{_PIN_HELP}")
    pkey = None
    if options.get("private_key"):
        pkey = _private_key(str(options["private_key"]), options.get("private_key_passphrase") or None)
    timeout = float(options.get("timeout") or 30)

    class PinnedSFTPFileSystem(SFTPFileSystem):  # type: ignore[misc]
        def _connect(self) -> None:
            import paramiko

            client = paramiko.SSHClient()
            for key_type, key in (pinned.lookup(lookup) or {}).items():
                client.get_host_keys().add(lookup, key_type, key)
            client.set_missing_host_key_policy(_refuse_unpinned(display, fingerprints))
            sock = socket.create_connection((address or host, port), timeout=timeout)
            try:
                check_socket(sock)  # the peer actually reached, not a name that could resolve anew
                client.connect(host, port=port, sock=sock, username=username,
                               password=options.get("password") or None, pkey=pkey, look_for_keys=False, allow_agent=False, timeout=timeout,
                               banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout)
                self.ftp = client.open_sftp()
            except paramiko.BadHostKeyException as exc:
                client.close()
                sock.close()
                raise HostKeyRefused(f"{display}: the server's host key ({exc.key.get_name()} "
                                     f"{fingerprint(exc.key)}) is not the one pinned in known_hosts, so it is "
                                     f"refused: the server's key changed or someone is in between; "
                                     f"{_PIN_HELP}") from None
            except BaseException:
                client.close()
                sock.close()
                raise
            self.client = client
            weakref.finalize(self, client.close)  # the transport thread ends with the filesystem

    fs = PinnedSFTPFileSystem(host, skip_instance_cache=True)
    return fs, parts.path or "/"
