"""Fixtures for compiling and materializing specs against real warehouses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import Settings, load_settings


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    path = tmp_path / "specs"
    path.mkdir()
    return path


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[[str], Settings]:
    def make(warehouse_url: str) -> Settings:
        return load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_WAREHOUSE_URL": warehouse_url})

    return make


@pytest.fixture
def compile_specs(spec_dir: Path, settings_for: Callable[[str], Settings]) -> Callable[[str], dg.Definitions]:
    def make(warehouse_url: str) -> dg.Definitions:
        settings = settings_for(warehouse_url)
        return build_definitions(load_specs(spec_dir, uploads_root=settings.uploads_root), settings)

    return make


def query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()
