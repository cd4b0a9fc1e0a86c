"""sftp:// trusts only the host key the connection pins and only the credential it names: a real SFTP server on
loopback (aggregator_tests/sftp_server.py), the docs page's example run against it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from aggregator_tests.sftp_server import SftpServer
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files import FilesResource, FileStream
from connectors.files.sftp import HostKeyRefused
from connectors.secrets import Resolver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "sftp.md"


@pytest.fixture
def served(sftp_server: SftpServer) -> SftpServer:
    (sftp_server.root / "exports").mkdir(exist_ok=True)
    (sftp_server.root / "exports" / "orders.csv").write_text("id,sku\n1,a\n2,b\n")
    return sftp_server


def files(server: SftpServer, **options: str) -> FilesResource:
    return FilesResource(base_dir=server.url(), storage_options={"password": server.password, **options})


def other_key_line(server: SftpServer) -> str:
    public = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().split()
    return f"[127.0.0.1]:{server.port} {public[0]} {public[1]}"


def test_the_fingerprint_pins_the_key_as_well_as_known_hosts(served: SftpServer) -> None:
    assert files(served, host_key_fingerprint=served.fingerprint).check().endswith("readable, 1 files")
    assert files(served, known_hosts=served.known_hosts).check().endswith("readable, 1 files")


def test_a_connection_that_pins_no_key_is_refused_before_connecting(served: SftpServer) -> None:
    with pytest.raises(ConnectorConfigError, match=r"pins no host key.*unknown host keys are refused.*known_hosts"):
        files(served).check()
    elsewhere = served.known_hosts.replace("[127.0.0.1]", "[sftp.example.com]")
    with pytest.raises(ConnectorConfigError, match="names no key for this server"):
        files(served, known_hosts=elsewhere).check()


def test_an_unpinned_host_key_is_refused_naming_its_fingerprint(served: SftpServer) -> None:
    """The server's key is not the pinned one (a changed key or someone in between): no credential is sent, and
    the message gives the fingerprint to compare with the administrator's."""
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyRefused) as failure:
        files(served, host_key_fingerprint=wrong).check()
    assert served.fingerprint in str(failure.value) and "refused" in str(failure.value)
    with pytest.raises(HostKeyRefused, match=r"not the one pinned in known_hosts.*key changed"):
        files(served, known_hosts=other_key_line(served)).check()


def test_known_hosts_accepts_hashed_names_and_refuses_garbage(served: SftpServer) -> None:
    import paramiko

    hashed = paramiko.HostKeys.hash_host(f"[127.0.0.1]:{served.port}")
    line = re.sub(r"^\S+", hashed, served.known_hosts)
    assert files(served, known_hosts=f"# comment\n{line}\n").check().endswith("readable, 1 files")
    with pytest.raises(ConnectorConfigError, match="known_hosts line 1 is not a known_hosts line"):
        files(served, known_hosts="[127.0.0.1]:22 ssh-ed25519 not-base64!").check()


def test_an_encrypted_private_key_needs_its_passphrase(served: SftpServer) -> None:
    key = asyncssh.import_private_key(served.private_key)
    encrypted = key.export_private_key("openssh", passphrase="open sesame").decode()
    pin = {"known_hosts": served.known_hosts}
    opened = FilesResource(base_dir=served.url(), storage_options={
        **pin, "private_key": encrypted, "private_key_passphrase": "open sesame"})
    assert [len(b) for b in opened.read(FileStream(path="*.csv"))] == [2]
    with pytest.raises(ConnectorConfigError, match="private_key is encrypted: set storage_options.private_key_passphrase"):
        FilesResource(base_dir=served.url(), storage_options={**pin, "private_key": encrypted}).check()
    with pytest.raises(ConnectorConfigError, match="not an Ed25519, ECDSA or RSA private key") as failure:
        FilesResource(base_dir=served.url(), storage_options={**pin, "private_key": "garbage-key-text"}).check()
    assert "garbage-key-text" not in str(failure.value)


def test_user_and_credential_come_from_the_connection_only(served: SftpServer) -> None:
    pin = {"known_hosts": served.known_hosts}
    with pytest.raises(ConnectorConfigError, match="not in the URL"):
        FilesResource(base_dir=f"sftp://loader:{served.password}@127.0.0.1:{served.port}/exports",
                      storage_options={**pin, "password": served.password}).check()
    with pytest.raises(ConnectorConfigError, match="name the SFTP user"):
        FilesResource(base_dir=f"sftp://127.0.0.1:{served.port}/exports",
                      storage_options={**pin, "password": served.password}).check()
    with pytest.raises(ConnectorConfigError, match="set storage_options.password or storage_options.private_key"):
        FilesResource(base_dir=served.url(), storage_options=pin).check()  # never the agent or ~/.ssh keys
    with pytest.raises(ValueError, match="colour not understood for sftp:// locations; allowed: username"):
        FilesResource(base_dir=served.url(), storage_options={**pin, "colour": "blue"})


def test_an_unreachable_server_fails_as_a_read_error(served: SftpServer, free_port: int) -> None:
    down = FilesResource(base_dir=f"sftp://loader@127.0.0.1:{free_port}/exports",
                         storage_options={"password": served.password, "host_key_fingerprint": served.fingerprint})
    with pytest.raises(SourceReadError, match=rf"sftp://loader@127.0.0.1:{free_port}/exports: connecting: ") as failure:
        down.check()
    assert served.password not in str(failure.value)


def docs_connection() -> dict[str, Any]:
    """The first connection example of docs/connectors/sftp.md."""
    block = re.search(r"^```yaml\n(.*?)^```", DOCS.read_text(), re.DOTALL | re.MULTILINE)
    assert block is not None
    config: dict[str, Any] = yaml.safe_load(block.group(1))["connection"]["config"]
    return config


def test_the_docs_example_reads_from_a_live_server(served: SftpServer) -> None:
    """docs/connectors/sftp.md's connection, with its {env: NAME}s set and its host swapped for the test server's."""
    config = docs_connection()
    env = {"PARTNER_SFTP_PASSWORD": served.password, "PARTNER_SFTP_KNOWN_HOSTS": served.known_hosts}
    assert {o["env"] for o in config["storage_options"].values()} == set(env)
    options = Resolver(env).resolve(config["storage_options"], "docs example")
    resource = FilesResource(base_dir=served.url(), storage_options=options)
    assert [len(b) for b in resource.read(FileStream(path="*.csv", incremental_by="name"))] == [2]
