"""Which argument and input field of Dagster's mutations selects what: the target map, as data.

Every argument of a mutation a launcher or editor may send, and every input field reachable from one through
`WALK` entries, is listed here exactly once: as a target kind, as `WALK` (an input object the walker enters)
or in `HARMLESS` with the reason it cannot select anything. Keys are `mutation(argument)` for arguments and
`InputType.field` for input fields; `mutation:InputType.field` overrides the latter for one mutation.
aggregator_tests/proxy/test_policy_target_fields.py introspects Dagster's schema and fails on any field that is
in neither table, so a Dagster upgrade that adds a selecting field cannot slip past the scope check; at run
time an unlisted field makes the request a refusal (`UnmappedField`), never an allow.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal


class Kind(str, Enum):
    """What a target names. The value is the key used in audit records and refusals."""

    job = "jobs"
    asset = "assets"
    asset_check = "asset_checks"  # `asset/key:check_name`
    partition_set = "partition_sets"
    schedule = "schedules"
    sensor = "sensors"
    run = "runs"
    backfill = "backfills"
    # Subsets a job by op/step/preset instead of by asset: only allowed when the whole job is in scope.
    op_subset = "op_subsets"
    instigator_id = "instigator_ids"
    partitions_def = "partitions_defs"
    location = "locations"


WALK: Final = "walk"
Classification = Kind | Literal["walk"]

# Input object types whose value the extractor reads whole (a target field may hold these, or strings).
KEY_INPUT_FIELDS: Final[dict[str, frozenset[str]]] = {
    "AssetKeyInput": frozenset({"path"}),
    "AssetCheckHandleInput": frozenset({"assetKey", "name"}),
}
SCALAR_TARGET_TYPES: Final = frozenset({"String", "ID"})

TARGET_FIELDS: Final[dict[str, Classification]] = {
    # --- launches and re-executions
    "launchRun(executionParams)": WALK,
    "launchPipelineExecution(executionParams)": WALK,
    "launchMultipleRuns(executionParamsList)": WALK,
    "launchRunReexecution(executionParams)": WALK,
    "launchRunReexecution(reexecutionParams)": WALK,
    "launchPipelineReexecution(executionParams)": WALK,
    "launchPipelineReexecution(reexecutionParams)": WALK,
    "ExecutionParams.selector": WALK,
    "ExecutionParams.executionMetadata": WALK,
    "ExecutionParams.preset": Kind.op_subset,  # a preset carries its own op selection
    # Dagster executes `pipelineName or jobName` (dagster_graphql/implementation/utils.py
    # pipeline_selector_from_graphql); both are targets, and both must be in scope.
    "JobOrPipelineSelector.pipelineName": Kind.job,
    "JobOrPipelineSelector.jobName": Kind.job,
    "JobOrPipelineSelector.solidSelection": Kind.op_subset,
    "JobOrPipelineSelector.assetSelection": Kind.asset,
    "JobOrPipelineSelector.assetCheckSelection": Kind.asset_check,
    # The new run's lineage: re-executions read the parent's outputs and steps.
    "ExecutionMetadata.rootRunId": Kind.run,
    "ExecutionMetadata.parentRunId": Kind.run,
    "ReexecutionParams.parentRunId": Kind.run,
    # --- runs
    "terminateRun(runId)": Kind.run,
    "terminatePipelineExecution(runId)": Kind.run,
    "terminateRuns(runIds)": Kind.run,
    "deleteRun(runId)": Kind.run,
    "deletePipelineRun(runId)": Kind.run,
    # --- backfills
    "launchPartitionBackfill(backfillParams)": WALK,
    "reexecutePartitionBackfill(reexecutionParams)": WALK,
    # Here `parentRunId` holds a backfill id (dagster_graphql/implementation/execution/backfill.py).
    "reexecutePartitionBackfill:ReexecutionParams.parentRunId": Kind.backfill,
    "cancelPartitionBackfill(backfillId)": Kind.backfill,
    "resumePartitionBackfill(backfillId)": Kind.backfill,
    "LaunchBackfillParams.selector": WALK,
    "LaunchBackfillParams.assetSelection": Kind.asset,
    "LaunchBackfillParams.partitionsByAssets": WALK,
    "PartitionSetSelector.partitionSetName": Kind.partition_set,
    "PartitionsByAssetSelector.assetKey": Kind.asset,
    # --- schedules and sensors
    "startSchedule(scheduleSelector)": WALK,
    "resetSchedule(scheduleSelector)": WALK,
    "scheduleDryRun(selectorData)": WALK,
    "ScheduleSelector.scheduleName": Kind.schedule,
    "stopRunningSchedule(id)": Kind.instigator_id,
    "stopRunningSchedule(scheduleOriginId)": Kind.instigator_id,
    "stopRunningSchedule(scheduleSelectorId)": Kind.instigator_id,
    "startSensor(sensorSelector)": WALK,
    "resetSensor(sensorSelector)": WALK,
    "setSensorCursor(sensorSelector)": WALK,
    "sensorDryRun(selectorData)": WALK,
    "SensorSelector.sensorName": Kind.sensor,
    "stopSensor(id)": Kind.instigator_id,
    "stopSensor(jobOriginId)": Kind.instigator_id,
    "stopSensor(jobSelectorId)": Kind.instigator_id,
    # --- assets
    "wipeAssets(assetPartitionRanges)": WALK,
    "reportRunlessAssetEvents(eventParams)": WALK,
    "ReportRunlessAssetEventsParams.assetKey": Kind.asset,
    "reportAssetCheckEvaluations(eventParams)": WALK,
    "ReportAssetCheckEvaluationsParams.assetKey": Kind.asset,
    "addDynamicPartition(partitionsDefName)": Kind.partitions_def,
    "deleteDynamicPartitions(partitionsDefName)": Kind.partitions_def,
    # --- code locations
    "reloadRepositoryLocation(repositoryLocationName)": Kind.location,
}

_REPO = ("jobs, schedules, sensors and partition sets are resolved by name across every location at once "
         "(a name in two locations must be in scope in both), so the location cannot widen a grant")
_WITHIN = "subsets or parameterizes what the other fields of the same launch selected; cannot add a target"
_TEXT = "free text or metadata stored with the event or run"

HARMLESS: Final[dict[str, str]] = {
    "JobOrPipelineSelector.repositoryName": _REPO,
    "JobOrPipelineSelector.repositoryLocationName": _REPO,
    "ScheduleSelector.repositoryName": _REPO,
    "ScheduleSelector.repositoryLocationName": _REPO,
    "SensorSelector.repositoryName": _REPO,
    "SensorSelector.repositoryLocationName": _REPO,
    "PartitionSetSelector.repositorySelector": _REPO,
    "addDynamicPartition(repositorySelector)": _REPO,
    "deleteDynamicPartitions(repositorySelector)": _REPO,
    "ExecutionParams.runConfigData": "run config parameterizes the selected job; it cannot select ops or assets",
    "ExecutionParams.mode": "legacy mode of the selected job",
    # Steps of the plan built from the (asset- or op-) subset: Dagster cannot add a step outside it.
    "ExecutionParams.stepKeys": _WITHIN,
    "ExecutionMetadata.tags": "run tags; the proxy replaces the `user` tag itself",
    "ReexecutionParams.strategy": _WITHIN,
    "ReexecutionParams.extraTags": "run tags; the proxy replaces the `user` tag itself",
    "ReexecutionParams.useParentRunTags": "run tags of the parent, which is a target",
    "LaunchBackfillParams.partitionNames": _WITHIN,
    "LaunchBackfillParams.reexecutionSteps": _WITHIN,
    "LaunchBackfillParams.fromFailure": _WITHIN,
    "LaunchBackfillParams.allPartitions": _WITHIN,
    "LaunchBackfillParams.tags": "run tags; the proxy replaces the `user` tag itself",
    "LaunchBackfillParams.forceSynchronousSubmission": "how, not what, Dagster submits",
    "LaunchBackfillParams.title": _TEXT,
    "LaunchBackfillParams.description": _TEXT,
    "LaunchBackfillParams.runConfigData": "run config parameterizes the selected job; it cannot select ops or assets",
    "PartitionsByAssetSelector.partitions": "partition keys of `assetKey`, which is the target",
    "terminateRun(terminatePolicy)": "how, not which run, to terminate",
    "terminatePipelineExecution(terminatePolicy)": "how, not which run, to terminate",
    "terminateRuns(terminatePolicy)": "how, not which runs, to terminate",
    "scheduleDryRun(timestamp)": "evaluation time of the selected schedule",
    "setSensorCursor(cursor)": "cursor value of the selected sensor",
    "sensorDryRun(cursor)": "cursor value of the selected sensor",
    "ReportRunlessAssetEventsParams.eventType": _TEXT,
    "ReportRunlessAssetEventsParams.partitionKeys": "partition keys of `assetKey`, which is the target",
    "ReportRunlessAssetEventsParams.description": _TEXT,
    # A check is inside a scope when its asset is, and `assetKey` is the target.
    "ReportAssetCheckEvaluationsParams.checkName": "a check of `assetKey`, which is the target",
    "ReportAssetCheckEvaluationsParams.passed": _TEXT,
    "ReportAssetCheckEvaluationsParams.severity": _TEXT,
    "ReportAssetCheckEvaluationsParams.serializedMetadata": _TEXT,
    "ReportAssetCheckEvaluationsParams.partitionKeys": "partition keys of `assetKey`, which is the target",
    "ReportAssetCheckEvaluationsParams.description": _TEXT,
    "addDynamicPartition(partitionKey)": "a key added to `partitionsDefName`, which is the target",
    "deleteDynamicPartitions(partitionKeys)": "keys of `partitionsDefName`, which is the target",
    "deleteDynamicPartitions(wipeMaterializations)": "how, not what, to delete",
}


def classify(mutation: str, owner: str | None, name: str) -> Classification | Literal["harmless"] | None:
    """How one argument (`owner` None) or input field (`owner` the input type) is treated; None: unmapped."""
    keys = [f"{mutation}({name})"] if owner is None else [f"{mutation}:{owner}.{name}", f"{owner}.{name}"]
    for key in keys:
        if key in TARGET_FIELDS:
            return TARGET_FIELDS[key]
        if key in HARMLESS:
            return "harmless"
    return None
