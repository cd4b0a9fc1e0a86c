"""Log search over 100,000 events: `aggregator logs search` (aggregator.logs.search) against a brute-force
scan of every run's events through Dagster's API, on Dagster's default SQLite storage and on PostgreSQL.

    python bench/log_search.py [--events 100000] [--runs 100] [--storage sqlite,postgresql]

Events are written straight into the instance's event log storage (batches per run), as runs of three
pipelines with mixed levels; one event in a thousand carries the rare word searched for."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._serdes import serialize_value

from aggregator.logs.search import LogQuery, search_logs

LEVELS = [logging.DEBUG] * 5 + [logging.INFO] * 4 + [logging.WARNING]


@contextmanager
def instance_for(storage: str) -> Iterator[dg.DagsterInstance]:
    home = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    try:
        if storage == "sqlite":
            with dg.instance_for_test(temp_dir=str(home)) as instance:
                yield instance
            return
        import os

        from aggregator_tests.postgres import find_server, temporary_database

        admin, _ = find_server(home / "embedded-pg")
        with temporary_database(admin) as db:
            shutil.copyfile(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
            os.environ["DAGSTER_PG_URL"] = db.dsn
            instance = dg.DagsterInstance.from_config(str(home))
            try:
                yield instance
            finally:
                instance.dispose()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def populate(instance: dg.DagsterInstance, events: int, runs: int) -> list[str]:
    per_run = events // runs
    start = time.time() - events  # one event a second, ending now
    run_ids = []
    n = 0
    for r in range(runs):
        pipeline = ("shop", "sales", "crm")[r % 3]
        run_id = str(uuid.uuid4())
        instance.add_run(DagsterRun(job_name=f"{pipeline}_job", run_id=run_id,
                                    tags={"aggregator/pipeline": pipeline}))
        batch = []
        for i in range(per_run):
            level = logging.ERROR if i == per_run - 1 else LEVELS[i % len(LEVELS)]
            word = " zebrafish" if n % 1000 == 0 else ""
            batch.append(dg.EventLogEntry(
                error_info=None, level=level, user_message=f"step {i} of {pipeline}: loaded {i * 7} rows{word}",
                run_id=run_id, timestamp=start + n, step_key=f"{pipeline}__orders", job_name=f"{pipeline}_job",
                dagster_event=None,
            ))
            n += 1
        # one multi-row INSERT per run, in the columns Dagster's store_event writes (one commit per event
        # would make writing the fixture take longer than everything measured)
        rows = [{"run_id": e.run_id, "event": serialize_value(e), "dagster_event_type": None,
                 "timestamp": dt.datetime.fromtimestamp(e.timestamp, dt.UTC).replace(tzinfo=None),
                 "step_key": e.step_key, "asset_key": None, "partition": None} for e in batch]
        storage = cast(SqlEventLogStorage, instance.event_log_storage)  # SQLite and PostgreSQL both are
        with storage.run_connection(run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        run_ids.append(run_id)
    return run_ids


def brute_force(instance: dg.DagsterInstance, run_ids: list[str], query: LogQuery) -> list[str]:
    """What one would do without the search: read every run's events and filter them in Python."""
    found = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if query.pipeline and run is not None and run.tags.get("aggregator/pipeline") != query.pipeline:
            continue
        for entry in instance.all_logs(run_id):
            if query.level and entry.level < logging.getLevelName(query.level):
                continue
            if query.text and query.text.lower() not in entry.message.lower():
                continue
            found.append(entry.message)
    return found[: query.limit]


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--storage", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    queries = {
        "rare text (100 hits), page 50": LogQuery(text="zebrafish", limit=50),
        "level ERROR, page 50": LogQuery(level="ERROR", limit=50),
        "pipeline + text, page 50": LogQuery(pipeline="crm", text="zebrafish", limit=50),
        "newest 50, no filter": LogQuery(limit=50),
        "no match at all": LogQuery(text="no-such-words", limit=50),
    }
    print("| storage | query | search (s) | brute-force scan (s) | speed-up |\n|---|---|---|---|---|")
    for storage in args.storage.split(","):
        with instance_for(storage) as instance:
            t0 = time.perf_counter()
            run_ids = populate(instance, args.events, args.runs)
            print(f"<!-- {storage}: wrote {args.events} events in {args.runs} runs in "
                  f"{time.perf_counter() - t0:.1f}s -->", file=sys.stderr)
            for name, query in queries.items():
                ours = timed(partial(search_logs, instance, query), args.repeat)
                raw = timed(partial(brute_force, instance, run_ids, query), 1)
                print(f"| {storage} | {name} | {ours:.3f} | {raw:.2f} | {raw / ours:.0f}x |")


if __name__ == "__main__":
    main()
