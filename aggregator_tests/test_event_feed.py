"""The every-record feed behind live events, on run-sharded SQLite and on PostgreSQL: from its end cursor on,
each new record (plain log lines too) is read exactly once, paged in small reads, and nothing older."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events import DagsterEventType

from aggregator import event_feed
from aggregator.event_feed import ALL, FeedCursor, end_cursor, read_new
from aggregator_tests.postgres import PgDatabase

REPO = Path(__file__).resolve().parents[1]


def _run(instance: dg.DagsterInstance, pipeline: str, *, fail: bool = False) -> str:
    @dg.op
    # unannotated: Dagster rejects the string annotation `from __future__ import annotations` makes
    def speak(context) -> None:
        context.log.info(f"a plain log line of {pipeline}")
        if fail:
            raise dg.Failure(description="on purpose")

    job = dg.GraphDefinition(name=f"{pipeline}_feed_job", node_defs=[speak]).to_job()
    return job.execute_in_process(instance=instance, tags={"aggregator/pipeline": pipeline},
                                  raise_on_error=False).run_id


def test_every_new_record_is_read_once_and_nothing_before_the_end_cursor(
        storage_instance: dg.DagsterInstance) -> None:
    instance = storage_instance
    before = _run(instance, "old")
    cursor = end_cursor(instance, time.time())
    runs = [_run(instance, "sales"), _run(instance, "sales", fail=True), _run(instance, "shop")]
    got: list[tuple[str, int]] = []
    while batch := read_new(instance, None, cursor, limit=7):  # small pages: the cursor must carry over
        got += [(r.event_log_entry.run_id, r.storage_id) for r in batch]
    storage = instance.event_log_storage
    want = {(run_id, r.storage_id) for run_id in runs
            for r in storage.get_records_for_run(run_id, limit=100_000).records}
    assert len(got) == len(set(got)), "a record was read twice"
    assert set(got) == want
    assert before not in {run_id for run_id, _ in got}
    assert any(r.event_log_entry.dagster_event is None
               for run_id in runs for r in storage.get_records_for_run(run_id, limit=100_000).records), \
        "the runs wrote plain log lines (no event type), which the feed must read too"


def test_a_record_that_commits_after_a_higher_id_was_read_is_still_read_once(
        pg_db: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL hands out storage ids at insert and shows rows at commit: a record whose transaction commits
    after a record with a higher id was read was skipped for good by `id > last id` (an alert never sent, a live
    event missing). Reproduced with a held transaction; the every-record feed and a typed feed (what the alert
    sensor reads) both read it once, later."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    instance = dg.DagsterInstance.from_config(str(home))
    engine = sa.create_engine(pg_db.sqlalchemy_url)
    try:
        first = _run(instance, "sales")
        every = end_cursor(instance, time.time())
        typed = FeedCursor()
        read_new(instance, [DagsterEventType.RUN_SUCCESS], typed)  # up to date with the first run's success
        with engine.connect() as held:
            transaction = held.begin()
            late_id = held.execute(sa.text(
                "INSERT INTO event_logs (run_id, event, dagster_event_type, timestamp) "
                "SELECT run_id, event, dagster_event_type, timestamp FROM event_logs "
                "WHERE run_id = :run AND dagster_event_type = 'PIPELINE_SUCCESS' RETURNING id"), {"run": first}
            ).scalar_one()
            second = _run(instance, "shop")  # commits records with ids above the held one
            before_commit = {r.storage_id for r in read_new(instance, None, every)}
            typed_before = {r.storage_id for r in read_new(instance, [DagsterEventType.RUN_SUCCESS], typed)}
            assert before_commit and min(before_commit) > late_id and late_id not in typed_before
            assert len(typed_before) == 1  # the second run's success
            transaction.commit()
        every = FeedCursor.from_json(json.loads(json.dumps(every.to_json())))  # as a sensor keeps it
        assert {r.storage_id for r in read_new(instance, None, every)} == {late_id}
        assert {r.storage_id for r in read_new(instance, [DagsterEventType.RUN_SUCCESS], typed)} == {late_id}
        assert read_new(instance, None, every) == [] and read_new(instance, [DagsterEventType.RUN_SUCCESS], typed) == []
        assert second
        # Once settled, the cursor forgets what it read: its size follows the last SETTLE_S only.
        monkeypatch.setattr(event_feed, "SETTLE_S", 0.0)
        read_new(instance, None, every)
        assert every.recent[ALL] == [] and every.settled[ALL] == every.ids[ALL]
    finally:
        engine.dispose()
        instance.dispose()
