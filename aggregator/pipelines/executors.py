"""Which executor runs a pipeline's steps: in one process by default, or one process (or pod) per step."""

from __future__ import annotations

from typing import Literal

import dagster as dg

ExecutorName = Literal["in_process", "multiprocess", "k8s"]

# The platform default. A step process costs ~2 s of imports and spec loading before it does any work, which
# for the sample pipelines is most of the run (issue 12: 28-30 s multiprocess against 4.5 s in process).
DEFAULT_EXECUTOR: ExecutorName = "in_process"


def executor_def(name: ExecutorName) -> dg.ExecutorDefinition:
    """The Dagster executor for a spec's `executor:` choice."""
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        # forkserver: every step forks from one server process that imported the code location (and so loaded
        # the specs) once, instead of a fresh interpreter per step; steps still run isolated and in parallel.
        return dg.multiprocess_executor.configured(
            {"start_method": {"forkserver": {}}}, name="multiprocess"
        )
    # Imported only when chosen: dagster_k8s pulls in the kubernetes client.
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor
