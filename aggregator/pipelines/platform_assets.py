"""The platform's own asset: spec problems, shown in the UI and failing a check while any exist."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import hashlib

import dagster as dg

from aggregator.pipelines.load import SpecError

SPEC_ERRORS_KEY = dg.AssetKey(["platform", "spec_errors"])
CHECK_NAME = "no_spec_errors"


def _listing(errors: list[SpecError]) -> str:
    return "\n".join(f"- `{e}`" for e in errors)


def spec_error_definitions(errors: list[SpecError], dropped: list[str]) -> dg.Definitions:
    """`platform/spec_errors` (its description lists every problem), its check and the sensor that runs it.

    The description is visible as soon as the code location loads; the check result is what alerting and the
    asset health view use. The sensor launches the asset whenever the set of problems changes, so the check
    turns red when a broken spec is saved and green again once it is fixed, without anyone clicking.
    """
    summary = (
        f"{len(errors)} problem(s) in pipeline specs; pipelines not loaded: {', '.join(dropped) or 'none'}; "
        "files with a problem are left out whole:\n\n" + _listing(errors)
        if errors else "No problems in the pipeline specs: every pipeline loaded."
    )
    fingerprint = hashlib.sha256("\n".join(str(e) for e in errors).encode()).hexdigest()[:16]

    @dg.asset(
        key=SPEC_ERRORS_KEY,
        group_name="platform",
        description=summary,
        kinds={"yaml"},
        check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=SPEC_ERRORS_KEY,
                                       description="Fails while any pipeline spec has a problem.")],
    )
    def spec_errors(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Problems found when loading the pipeline specs (file:line: field: message)."""
        for error in errors:
            context.log.error(str(error))
        metadata: dict[str, dg.MetadataValue] = {
            "problems": dg.MetadataValue.int(len(errors)),
            "pipelines_not_loaded": dg.MetadataValue.text(", ".join(dropped) or "none"),
            "errors": dg.MetadataValue.md(_listing(errors) or "none"),
        }
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[dg.AssetCheckResult(
                check_name=CHECK_NAME, passed=not errors, severity=dg.AssetCheckSeverity.ERROR,
                description=f"{len(errors)} problem(s) in pipeline specs" if errors else "no problems",
                metadata=metadata,
            )],
        )

    @dg.sensor(
        name="platform_spec_errors_sensor",
        asset_selection=[SPEC_ERRORS_KEY],
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records the pipeline spec problems (platform/spec_errors) whenever they change.",
    )
    def spec_errors_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        if context.cursor == fingerprint or (context.cursor is None and not errors):
            return dg.SkipReason("the spec problems have not changed")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=fingerprint, asset_selection=[SPEC_ERRORS_KEY])], cursor=fingerprint
        )

    return dg.Definitions(assets=[spec_errors], sensors=[spec_errors_sensor])
