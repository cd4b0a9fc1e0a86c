"""A pipeline's job, cron schedule, file sensor and partitions."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from aggregator.pipelines.executors import executor_def
from aggregator.pipelines.run_tags import PIPELINE_TAG
from aggregator.pipelines.spec import Partitions, PipelineSpec, Schedule
from aggregator.pipelines.uploads_objects import listed_objects
from aggregator.settings import load_settings

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def partitions_definition(partitions: Partitions | None) -> dg.TimeWindowPartitionsDefinition | None:
    if partitions is None:
        return None
    if partitions.grain == "daily":
        return dg.DailyPartitionsDefinition(
            start_date=partitions.start.strftime("%Y-%m-%d"), timezone=partitions.timezone, end_offset=partitions.end_offset
        )
    return dg.HourlyPartitionsDefinition(
        start_date=partitions.start.strftime("%Y-%m-%d-%H:%M"), timezone=partitions.timezone, end_offset=partitions.end_offset
    )


def pipeline_job(pipeline: PipelineSpec) -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        f"{pipeline.name}_job",
        selection=dg.AssetSelection.groups(pipeline.name),
        description=pipeline.description,
        # deploy/dagster.yaml limits concurrent runs per pipeline with this tag
        tags={PIPELINE_TAG: pipeline.name},
        executor_def=executor_def(pipeline.executor),
    )


def _status(enabled: bool) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED


def missed_tick(context: dg.ScheduleEvaluationContext, schedule: Schedule) -> dg.SkipReason | None:
    """With `catch_up: skip`, a tick evaluated `late_after_s` after its time is one the daemon missed (it or the
    code server was down) and is skipped. Dagster itself evaluates only the newest missed tick of a schedule
    (docs/operations.md), so `latest` needs nothing here."""
    if schedule.catch_up != "skip" or context.scheduled_execution_time is None:
        return None
    late = time.time() - context.scheduled_execution_time.timestamp()
    if late < schedule.late_after_s:
        return None
    return dg.SkipReason(f"missed tick of {context.scheduled_execution_time.isoformat()} evaluated {late:.0f} s late "
                         f"(the platform was down); catch_up: skip, so the next regular tick runs")


def pipeline_schedule(
    pipeline: PipelineSpec, job: "UnresolvedAssetJobDefinition", partitions_def: dg.TimeWindowPartitionsDefinition | None
) -> dg.ScheduleDefinition | None:
    schedule = pipeline.schedule
    if schedule is None:
        return None
    if partitions_def is None:
        @dg.schedule(
            name=f"{pipeline.name}_schedule", job=job, cron_schedule=schedule.cron,
            execution_timezone=schedule.timezone, default_status=_status(schedule.enabled),
            description=f"Runs the {pipeline.name} pipeline on '{schedule.cron}' ({schedule.timezone}); missed "
                        f"ticks: {schedule.catch_up}.",
        )
        def _plain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
            return missed_tick(context, schedule) or dg.RunRequest()

        return _plain

    @dg.schedule(
        name=f"{pipeline.name}_schedule", job=job, cron_schedule=schedule.cron,
        execution_timezone=schedule.timezone, default_status=_status(schedule.enabled),
        description=f"Loads the latest complete window of {pipeline.name} on '{schedule.cron}'.",
    )
    def _partitioned(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        skipped = missed_tick(context, schedule)
        if skipped is not None:
            return skipped
        window = partitions_def.get_prev_partition_window(context.scheduled_execution_time)
        if window is None:
            return dg.SkipReason("no complete partition yet")
        key = partitions_def.get_partition_key_for_timestamp(window.start.timestamp())
        return dg.RunRequest(run_key=key, partition_key=key)

    return _partitioned


def file_sensor(pipeline: PipelineSpec, job: "UnresolvedAssetJobDefinition") -> dg.SensorDefinition | None:
    spec = pipeline.sensor
    if spec is None:
        return None
    directory = Path(spec.directory)
    uploads = load_settings().uploads_s3  # the code server's settings: the ones runs and the proxy share
    objects = uploads if uploads is not None and directory.is_relative_to(uploads.local_root) else None

    @dg.sensor(
        name=f"{pipeline.name}_files_sensor", job=job, minimum_interval_seconds=spec.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if spec.enabled else dg.DefaultSensorStatus.STOPPED,
        description=f"Runs {pipeline.name} when files matching '{spec.pattern}' appear or change in "
        f"{directory if objects is None else 's3://' + objects.bucket + '/' + objects.key_of(directory)}.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        if objects is not None:  # uploads live in object storage: the directory names a key prefix there
            current = listed_objects(objects, directory, spec.pattern)
        elif not directory.is_dir():
            return dg.SkipReason(f"{directory} does not exist")
        else:
            # Hidden names are never a delivered file: uploads and copies in flight use them (pathlib's glob,
            # unlike the shell's, matches them with `*`).
            current = {p.name: p.stat().st_mtime for p in sorted(directory.glob(spec.pattern))
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)}
        changed = sorted(name for name, mtime in current.items() if seen.get(name) != mtime)
        if not changed:
            return dg.SkipReason(f"no new or changed files in {directory}")
        # The run key is derived from what changed, so a re-evaluation never launches the same files twice.
        run_key = hashlib.sha256(json.dumps([(n, current[n]) for n in changed]).encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=run_key, tags={"aggregator/new_files": str(len(changed))})],
            cursor=json.dumps(current),
        )

    return _sensor
