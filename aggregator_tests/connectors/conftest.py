"""Fixtures for connector tests: the local test API (one server per session, state reset per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aggregator_tests.testapi import LocalApi, running_api


@pytest.fixture(scope="session")
def _api_server() -> Iterator[LocalApi]:
    with running_api() as api:
        yield api


@pytest.fixture
def api(_api_server: LocalApi) -> LocalApi:
    _api_server.state.reset()
    return _api_server
