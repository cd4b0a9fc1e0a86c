"""Every run that materializes a pipeline's assets carries `aggregator/pipeline: <name>`, however it was started.

Jobs of schedules, sensors and the API set the tag themselves. Dagster's implicit asset job (the UI's
Materialize, `dagster asset materialize`, backfills) carries no tags of its own, so each asset also tags its run
when it starts: log search (`aggregator logs search --pipeline`), alerts and metrics group runs by this tag."""

from __future__ import annotations

import logging

import dagster as dg

PIPELINE_TAG = "aggregator/pipeline"

log = logging.getLogger(__name__)


def tag_run(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, pipeline: str) -> None:
    """Add the pipeline tag to the current run unless it has one (a run over several pipelines keeps the first)."""
    run = context.run
    if run.tags.get(PIPELINE_TAG):
        return
    current = context.instance.get_run_by_id(run.run_id)
    if current is None or current.tags.get(PIPELINE_TAG):
        return  # another step of this run tagged it meanwhile
    context.instance.add_run_tags(run.run_id, {PIPELINE_TAG: pipeline})
