"""Small helpers for tests: materializing a code location's assets against a real instance."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Materialize every asset of `defs` in process, with its resources, raising on failure."""
    job = defs.resolve_implicit_global_asset_job_def()
    if instance is not None:
        return job.execute_in_process(instance=instance, raise_on_error=True)
    # Closed here: an ephemeral instance owns a temporary directory; the result keeps its events in memory.
    with dg.DagsterInstance.ephemeral() as ephemeral:
        return job.execute_in_process(instance=ephemeral, raise_on_error=True)


def key_of(event: dg.DagsterEvent) -> str:
    """The user-facing asset key of a materialization event (typed: every such event has one)."""
    assert event.asset_key is not None, event
    return event.asset_key.to_user_string()


def table_schema(metadata: Mapping[str, dg.MetadataValue], key: str = "dagster/column_schema") -> dg.TableSchema:
    value = metadata[key].value
    assert isinstance(value, dg.TableSchema), value
    return value


def warehouse_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The warehouse URL for a fixture parametrized by dialect (`request.param`): SQLite in `tmp_path`, or a
    fresh database on the real PostgreSQL (`pg_db`) or MariaDB/MySQL (`mysql_url`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    if request.param == "mysql":
        return str(request.getfixturevalue("mysql_url"))
    return str(request.getfixturevalue("pg_db").sqlalchemy_url)
