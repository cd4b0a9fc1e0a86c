"""A connection whose `{env: NAME}` is not set where the job runs: the run fails with one line saying so.

A spec's `{env: NAME}` becomes a `dg.EnvVar`, which Dagster resolves while it builds the run's config. When
NAME is unset that happens before any run exists and before any of our code runs, and what the user sees is
Dagster's `DagsterInvalidConfigError` with its `PostProcessingError` and stack traces (newcomer review item 9),
while `aggregator validate` and `connections check` say it in one line.

The definitions are loaded in the process whose environment the run gets (the CLI process of `dagster asset
materialize`; the code server, whose run workers inherit its environment; a run pod loads them again with its
own), so that is where a missing variable is known. Such a connection's resource is replaced by
`MissingEnvConnection`, which holds names only (never a value) and fails the run at resource setup with the
pipeline, the connection and field, the variable and how to set it. Dagster then records an ordinary failed
run with that message in its event log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from aggregator.pipelines.run_tags import PIPELINE_TAG
from connectors.secrets import env_refs


class MissingEnvConnection(dg.ConfigurableResource):
    """Stands in for a connection that reads an environment variable this process does not have."""

    connection: str = Field(description="Name of the connection in the specs.")
    field: str = Field(description="Dotted path of the first field that reads an unset variable, e.g. config.auth.token.")
    variable: str = Field(description="Name of that environment variable (never its value).")
    pipelines: list[str] = Field(default_factory=list,
                                 description="Pipelines that use the connection (named when the run has no tag).")

    def message(self, pipeline: str | None = None) -> str:
        """One line: where, which variable, how to set it."""
        names = [pipeline] if pipeline else self.pipelines
        where = f"pipeline {', '.join(repr(n) for n in names)}: " if names else ""
        return (f"{where}connection {self.connection!r} {self.field} reads environment variable {self.variable}, "
                f"which is not set where this job runs; set it in the environment that starts the job (export "
                f"{self.variable}=... before `aggregator dev` or `dagster asset materialize`; deployed: the code "
                f"server's and the runs' secrets) and run again")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        pipeline = run.tags.get(PIPELINE_TAG) if run is not None else None
        raise dg.Failure(description=self.message(pipeline),
                         metadata={"connection": self.connection, "field": self.field, "variable": self.variable},
                         allow_retries=False)


def first_unset(config: Any, prefix: tuple[str, ...], environ: Mapping[str, str] | None = None
                ) -> tuple[str, str] | None:
    """(dotted field path, variable name) of the first `{env: NAME}` in `config` whose variable is unset."""
    env = os.environ if environ is None else environ
    for path, name in env_refs(config, prefix):
        if name not in env:
            return ".".join(str(p) for p in path), name
    return None


def missing_env_stand_in(name: str, config: Any, prefix: tuple[str, ...], pipelines: list[str],
                         environ: Mapping[str, str] | None = None) -> MissingEnvConnection | None:
    """The stand-in for connection `name` when `config` reads an unset variable, else None."""
    unset = first_unset(config, prefix, environ)
    if unset is None:
        return None
    field, variable = unset
    return MissingEnvConnection(connection=name, field=field, variable=variable, pipelines=sorted(pipelines))
