"""Roles and the permission table: which role each GraphQL root field and HTTP write needs.

Modelled on Dagster+ roles. Every Mutation field of Dagster's schema must appear in `MUTATION_ROLES`; the
test suite introspects the schema and fails on an unclassified one, so a Dagster upgrade cannot open a hole.
Anything not in the table is denied (`required_role` returns None).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Role(IntEnum):
    """Ordered: each role can do everything the ones below it can."""

    viewer = 10
    launcher = 20
    editor = 30
    admin = 40

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; allowed: {', '.join(r.name for r in cls)}") from None


# Mutations that only touch per-user UI state or telemetry: harmless for anyone who may read.
_VIEWER = {"logTelemetry", "setNuxSeen"}
_LAUNCHER = {
    "launchRun", "launchPipelineExecution", "launchMultipleRuns",
    "launchRunReexecution", "launchPipelineReexecution",
    "terminateRun", "terminateRuns", "terminatePipelineExecution",
    "launchPartitionBackfill", "reexecutePartitionBackfill", "cancelPartitionBackfill",
    "resumePartitionBackfill",
}
_EDITOR = {
    "startSchedule", "stopRunningSchedule", "resetSchedule", "scheduleDryRun",
    "startSensor", "stopSensor", "resetSensor", "setSensorCursor", "sensorDryRun",
    "wipeAssets", "reloadRepositoryLocation",
    "reportRunlessAssetEvents", "reportAssetCheckEvaluations",
    "addDynamicPartition", "deleteDynamicPartitions",
    # Deleting run history destroys the audit trail of what ran; Dagster+ reserves it for editors too.
    "deleteRun", "deletePipelineRun",
}
_ADMIN = {
    "reloadWorkspace", "shutdownRepositoryLocation",
    "setConcurrencyLimit", "deleteConcurrencyLimit", "freeConcurrencySlots", "freeConcurrencySlotsForRun",
    # Instance-wide switch: pauses automation for every pipeline at once.
    "setAutoMaterializePaused",
    "setAppManagedComponent", "deleteAppManagedComponent", "refreshComponentState",
}

MUTATION_ROLES: dict[str, Role] = {
    **{name: Role.viewer for name in _VIEWER},
    **{name: Role.launcher for name in _LAUNCHER},
    **{name: Role.editor for name in _EDITOR},
    **{name: Role.admin for name in _ADMIN},
}

# Mutations whose targets (jobs, schedules, sensors, assets, checks, runs, backfills) can be resolved, so a
# grant limited to some pipelines may allow them (policy/catalog.py decides membership). Everything else
# needs an unscoped grant: instigator ids (decoded by Dagster from compound ids, a second parser the proxy
# would have to mirror), partitions definitions and code locations are not mapped to pipelines, and an
# unmapped target is never assumed in scope.
SCOPABLE = (_LAUNCHER | _EDITOR) - {
    "reloadRepositoryLocation", "stopRunningSchedule", "stopSensor", "addDynamicPartition",
    "deleteDynamicPartitions",
}

# HTTP endpoints that write without GraphQL (POST /report_asset_*/<asset key>).
REPORT_ROUTES = ("report_asset_materialization", "report_asset_check", "report_asset_observation")
REPORT_ROLE = Role.editor

# Roles needed by the proxy's own admin features.
ADMIN_ROLE = Role.admin


def required_role(operation_type: str, field: str) -> Role | None:
    """Role needed for one root field; None means not classified, hence denied."""
    if operation_type in ("query", "subscription"):
        # Reads: everything in Query and Subscription is a read in Dagster's schema.
        return Role.viewer
    if operation_type == "mutation":
        return MUTATION_ROLES.get(field)
    return None


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user via a session, or a token acting for a user with its own role/scope."""

    user: str
    role: Role
    # None: the role applies to every pipeline. Otherwise the role applies only to these asset groups / jobs,
    # and the principal is a viewer elsewhere.
    scope: frozenset[str] | None = None
    via: str = "session"  # "session" | "token" | "oidc"
    token_id: str | None = None
    session_id: str | None = None

    def may(self, needed: Role) -> bool:
        return self.role >= needed


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    missing: str | None = None  # the permission that was missing, named in the 403 body
