"""The production instance config (deploy/dagster.yaml) runs on a real PostgreSQL and tracks runs there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from aggregator_tests.helpers import key_of, materialize_all
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.test_definitions import load_defs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_instance(pg_db: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    instance = dg.DagsterInstance.from_config(str(home))
    yield instance
    instance.dispose()


def test_production_instance_uses_postgres_storage(pg_instance: dg.DagsterInstance) -> None:
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_run_and_events_are_read_back_from_postgres(
    pg_instance: dg.DagsterInstance, pg_db: PgDatabase, aggregator_home: Path
) -> None:
    result = materialize_all(load_defs(), instance=pg_instance)
    run_id = result.run_id

    record = pg_instance.get_run_record_by_id(run_id)
    assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    materialized = {
        key_of(e.dagster_event)
        for e in pg_instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event is not None
    }
    assert {"sales/orders", "sales/daily_sales"} <= materialized

    # Read the same facts with plain SQL, so the test proves they are in PostgreSQL and not anywhere else.
    with psycopg.connect(pg_db.dsn) as conn:
        status = conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        events = conn.execute(
            "SELECT COUNT(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (run_id,),
        ).fetchone()
    assert status == ("SUCCESS",)
    assert events is not None
    assert events[0] == len(result.get_asset_materialization_events())
