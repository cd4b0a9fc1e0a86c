"""The remote locations the files connector's shared tests run against, each on a real server on loopback: SFTP
(asyncssh's server; password and key login) and Azure Blob Storage (Azurite)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aggregator_tests.azurite import Azurite
from aggregator_tests.sftp_server import SftpServer
from connectors.files import FilesResource


@dataclass
class Store:
    """One fresh directory (SFTP) or container (Azure) and how to reach it."""

    base_dir: str
    options: dict[str, str]  # the credentials themselves (direct resource tests)
    env: dict[str, str]  # NAME -> value for `spec_options`
    spec_options: dict[str, Any]  # the same options as {env: NAME} (pipeline specs)
    put: Callable[[str, bytes], None]  # write a file under base_dir
    secrets: list[str] = field(default_factory=list)  # no message or log line may hold these
    wrong: dict[str, str] = field(default_factory=dict)  # options with a credential the server refuses

    def resource(self, **options: str) -> FilesResource:
        return FilesResource(base_dir=self.base_dir, storage_options={**self.options, **options})


def sftp_store(server: SftpServer, login: str) -> Store:
    """A fresh directory on the SFTP server, logged into by `password` or by `key`."""
    directory = server.root / f"t-{uuid.uuid4().hex[:12]}"
    directory.mkdir()
    clock = [dt.datetime.now(dt.UTC).timestamp()]

    def put(name: str, body: bytes) -> None:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        clock[0] += 2  # SFTP tells whole seconds: each new file is visibly newer than the last
        os.utime(path, (clock[0], clock[0]))

    pin = {"known_hosts": server.known_hosts}
    if login == "password":
        credential, env_name = {"password": server.password}, "TEST_SFTP_PASSWORD"
        wrong = {"password": "not-the-password-1234"}
    else:
        credential, env_name = {"private_key": server.private_key}, "TEST_SFTP_KEY"
        import asyncssh

        wrong = {"private_key": asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()}
    (option,) = credential
    return Store(base_dir=server.url(f"/{directory.name}"), options={**pin, **credential},
                 env={env_name: credential[option], "TEST_SFTP_KNOWN_HOSTS": server.known_hosts},
                 spec_options={option: {"env": env_name}, "known_hosts": {"env": "TEST_SFTP_KNOWN_HOSTS"}},
                 put=put, secrets=[server.password, server.private_key, *wrong.values()], wrong=wrong)


def azure_store(azurite: Azurite) -> Store:
    """A fresh container on Azurite, read with the development account's key."""
    container = azurite.new_container()
    options = {"account_name": azurite.account, "account_key": azurite.key, "endpoint_url": azurite.endpoint}
    wrong_key = "d3Jvbmcta2V5LXZhbHVlLW5ldmVyLXNob3duLWFueXdoZXJl"
    return Store(base_dir=f"az://{container}/exports", options=options, env=azurite.env(),
                 spec_options={"account_name": {"env": "TEST_AZURE_ACCOUNT"}, "account_key": {"env": "TEST_AZURE_KEY"},
                               "endpoint_url": {"env": "TEST_AZURE_ENDPOINT"}},
                 put=lambda name, body: azurite.put(container, f"exports/{name}", body),
                 secrets=[azurite.key, wrong_key], wrong={"account_key": wrong_key})
