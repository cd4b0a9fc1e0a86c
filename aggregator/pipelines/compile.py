"""Compile loaded specs into Dagster definitions: assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import ValidationError

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.automation import (
    file_sensor,
    partitions_definition,
    pipeline_job,
    pipeline_schedule,
)
from aggregator.pipelines.check_assets import check_definitions
from aggregator.pipelines.connections import build_destination, build_resource
from aggregator.pipelines.graph import WAREHOUSE, Graph, build_graph, destination_key
from aggregator.pipelines.load import SpecError, SpecErrors, Specs, validation_errors
from aggregator.pipelines.source_assets import source_asset
from aggregator.pipelines.transform_assets import transform_asset
from aggregator.settings import Settings


def build_resources(specs: Specs, settings: Settings) -> dict[str, Any]:
    """One resource per connection (visible on the UI's resources page) plus each destination."""
    resources: dict[str, Any] = {WAREHOUSE: SqlDestination(url=settings.warehouse_url)}
    errors: list[SpecError] = []
    destinations = {p.destination for p, _, _ in specs.pipelines}
    for name, (conn, sf) in specs.connections.items():
        try:
            if name != WAREHOUSE:
                resources[name] = build_resource(conn)
            if name in destinations or name == WAREHOUSE:
                resources[destination_key(name)] = build_destination(conn)
        except ValidationError as exc:
            errors.extend(validation_errors(sf.raw, exc, ("connections", name, "config")))
        except ValueError as exc:
            errors.append(sf.error(("connections", name), str(exc)))
    if errors:
        raise SpecErrors(errors)
    return resources


def build_definitions(specs: Specs, settings: Settings) -> dg.Definitions:
    """Every pipeline as one asset group with its job, checks, schedule and sensor."""
    graph: Graph = build_graph(specs)
    resources = build_resources(specs, settings)
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    jobs, schedules, sensors = [], [], []
    for pipeline, _, _ in specs.pipelines:
        partitions_def = partitions_definition(pipeline.partitions)
        eager = dg.AutomationCondition.eager() if pipeline.automation == "eager" else None
        for node in graph.pipeline_nodes(pipeline.name):
            if node.is_source:
                assets.append(source_asset(node, partitions_def))
            else:
                assets.append(transform_asset(node, partitions_def, eager))
            checks.extend(check_definitions(node))
        job = pipeline_job(pipeline)
        jobs.append(job)
        if schedule := pipeline_schedule(pipeline, job, partitions_def):
            schedules.append(schedule)
        if sensor := file_sensor(pipeline, job):
            sensors.append(sensor)
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources
    )
