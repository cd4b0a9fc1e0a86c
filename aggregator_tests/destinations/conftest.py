"""A destination per dialect loads write into: SQLite, PostgreSQL and MySQL/MariaDB (`load_warehouse_url` comes
from aggregator_tests/conftest.py). Every destination test runs on each, unless its module narrows
`warehouse_url` back to the platform-wide dialects."""

from __future__ import annotations

import pytest

from aggregator.destinations.sql import SqlDestination


@pytest.fixture
def warehouse_url(load_warehouse_url: str) -> str:
    return load_warehouse_url


@pytest.fixture
def dest(warehouse_url: str) -> SqlDestination:
    return SqlDestination(url=warehouse_url)
