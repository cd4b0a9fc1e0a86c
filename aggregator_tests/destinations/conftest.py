"""A destination per dialect (`warehouse_url` comes from aggregator_tests/conftest.py)."""

from __future__ import annotations

import pytest

from aggregator.destinations.sql import SqlDestination


@pytest.fixture
def dest(warehouse_url: str) -> SqlDestination:
    return SqlDestination(url=warehouse_url)
