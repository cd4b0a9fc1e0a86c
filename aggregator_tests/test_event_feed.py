"""The every-record feed behind live events, on run-sharded SQLite and on PostgreSQL: from its end cursor on,
each new record (plain log lines too) is read exactly once, paged in small reads, and nothing older."""

from __future__ import annotations

import time

import dagster as dg

from aggregator.event_feed import end_cursor, read_new


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
