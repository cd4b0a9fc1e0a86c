"""Retention for Dagster's run and event-log storage:  prune_runs.py --older-than-days 30 [--dry-run]

Dagster's own `retention:` setting prunes schedule/sensor ticks only; runs and their event logs grow without
bound (tens of GB a month at thousands of runs a day). For every finished run last updated before the cutoff:
- a run that recorded no asset events is deleted with its events (`DagsterInstance.delete_run`);
- a run that materialized or observed assets, or evaluated asset checks, keeps its run row, its lifecycle events
  and those asset events, so asset history, partition status and freshness survive; its step logs, engine events
  and log lines (the bulk of the volume) are deleted.
Runs still queued, starting or running are never touched. Run it daily (Helm CronJob `aggregator-retention`,
Compose service `retention`); it is idempotent. Only runs that crossed the cutoff within the last
`--window-days` (default 7) are looked at, so a daily job does not re-read every trimmed run it ever kept; after
the job has not run for longer than that, catch up once with `--window-days 0` (no lower bound).
"""

from __future__ import annotations

import argparse
import datetime
import sys

import dagster as dg
import sqlalchemy as db
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import FINISHED_STATUSES
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable

# Events that make up asset history (kept), and the run's own lifecycle (kept so the run still reads correctly).
ASSET_EVENTS = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_FAILED_TO_MATERIALIZE,
}
RUN_EVENTS = {
    DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_DEQUEUED, DagsterEventType.RUN_STARTING,
    DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE,
    DagsterEventType.RUN_CANCELING, DagsterEventType.RUN_CANCELED,
}
KEEP = sorted(e.value for e in ASSET_EVENTS | RUN_EVENTS)


def prune(instance: dg.DagsterInstance, older_than: datetime.timedelta, *, dry_run: bool = False,
          now: datetime.datetime | None = None, window: datetime.timedelta | None = None) -> dict[str, int]:
    """Delete or trim the finished runs last updated before `now - older_than` (and, with `window`, not before
    `now - older_than - window`); counts of what was done."""
    cutoff = (now or datetime.datetime.now(datetime.UTC)) - older_than
    since = cutoff - window if window else None
    run_ids = instance.get_run_ids(
        dg.RunsFilter(statuses=list(FINISHED_STATUSES), updated_before=cutoff, updated_after=since))
    counts = {"deleted_runs": 0, "trimmed_runs": 0, "deleted_events": 0}
    for run_id in run_ids:
        asset_events = instance.get_records_for_run(run_id, of_type=ASSET_EVENTS, limit=1).records
        if not asset_events:
            counts["deleted_runs"] += 1
            if not dry_run:
                instance.delete_run(run_id)
            continue
        table = SqlEventLogStorageTable
        dropped = db.and_(table.c.run_id == run_id,
                          db.or_(table.c.dagster_event_type.is_(None), table.c.dagster_event_type.notin_(KEEP)))
        storage = instance.event_log_storage
        with storage.index_connection() as conn:  # type: ignore[attr-defined]  # SQL storages only
            if dry_run:
                n = conn.execute(db.select(db.func.count()).select_from(table).where(dropped)).scalar_one()
            else:
                n = conn.execute(table.delete().where(dropped)).rowcount
        counts["trimmed_runs"] += 1
        counts["deleted_events"] += n
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prune_runs.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--older-than-days", type=float, required=True,
                        help="finished runs last updated longer ago than this are pruned (default deploy: 30)")
    parser.add_argument("--window-days", type=float, default=7,
                        help="look only at runs that crossed the cutoff in this many days (0: all; default 7)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be pruned, change nothing")
    args = parser.parse_args(argv)
    if args.older_than_days < 1:
        raise SystemExit(f"prune_runs: --older-than-days {args.older_than_days}: must be at least 1 "
                         "(a smaller value would delete the logs of runs people are still looking at)")
    with dg.DagsterInstance.get() as instance:
        window = datetime.timedelta(days=args.window_days) if args.window_days > 0 else None
        counts = prune(instance, datetime.timedelta(days=args.older_than_days), dry_run=args.dry_run, window=window)
    verb = "would prune" if args.dry_run else "pruned"
    print(f"prune_runs: {verb} runs older than {args.older_than_days:g} days: {counts['deleted_runs']} deleted, "
          f"{counts['trimmed_runs']} trimmed to their asset events ({counts['deleted_events']} events removed)",
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
