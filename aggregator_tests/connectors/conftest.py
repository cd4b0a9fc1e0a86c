"""Fixtures for connector tests: the local test API (one server per session, state reset per test), an SFTP
server and Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aggregator_tests.azurite import Azurite, running_azurite
from aggregator_tests.sftp_server import SftpServer, running_sftp_server
from aggregator_tests.testapi import LocalApi, running_api


@pytest.fixture(scope="session")
def _api_server() -> Iterator[LocalApi]:
    with running_api() as api:
        yield api


@pytest.fixture
def api(_api_server: LocalApi) -> LocalApi:
    _api_server.state.reset()
    return _api_server


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """A real SFTP server (asyncssh's, a subprocess on loopback) with password and key login; stopped at the end
    of the session. Tests take a fresh directory each under `sftp_server.root`."""
    with running_sftp_server(tmp_path_factory.mktemp("sftp-server")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A real Azure Blob Storage emulator (Azurite, installed with npm into a cache directory on first use);
    stopped at the end of the session. Tests take a fresh container each (`azurite.new_container()`)."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server
