"""Small helpers for tests: materializing a code location's assets against a real instance."""

from __future__ import annotations

import dagster as dg


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Materialize every asset of `defs` in process, with its resources, raising on failure."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=True)
