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
from aggregator.pipelines.executors import DEFAULT_EXECUTOR, executor_def
from aggregator.pipelines.graph import WAREHOUSE, Graph, build_graph, destination_key
from aggregator.pipelines.load import SpecError, SpecErrors, Specs, validation_errors
from aggregator.pipelines.message_sensor import message_sensor
from aggregator.pipelines.missing_env import missing_env_stand_in
from aggregator.pipelines.source_assets import source_asset
from aggregator.pipelines.transform_assets import transform_asset
from aggregator.settings import Settings
from connectors.secrets import SecretReferenceError


def resources_by_connection(specs: Specs, settings: Settings) -> tuple[dict[str, Any], dict[str, list[SpecError]]]:
    """One resource per connection (visible on the UI's resources page) plus each destination, and the
    problems of each connection whose config does not build."""
    resources: dict[str, Any] = {WAREHOUSE: SqlDestination(url=settings.warehouse_url)}
    errors: dict[str, list[SpecError]] = {}
    destinations = {p.destination for p, _, _ in specs.pipelines}
    for name, (conn, sf) in specs.connections.items():
        users = [p.name for p, _, _ in specs.pipelines
                 if p.destination == name or any(s.connection == name for s in p.sources)]
        try:
            if name != WAREHOUSE:
                resources[name] = build_resource(conn, settings=settings)
                # Built first all the same: a bad config is a spec error whatever the environment.
                if stand_in := missing_env_stand_in(name, conn.config, ("config",), users):
                    resources[name] = stand_in
            if name in destinations or name == WAREHOUSE:
                resources[destination_key(name)] = build_destination(conn)
                if stand_in := missing_env_stand_in(name, conn.config.get("url"), ("config", "url"), users):
                    resources[destination_key(name)] = stand_in
        except ValidationError as exc:
            errors[name] = validation_errors(sf.raw, exc, ("connections", name, "config"))
        except SecretReferenceError as exc:
            errors[name] = [sf.error(("connections", name, *exc.path), exc.reason)]
        except ValueError as exc:
            errors[name] = [sf.error(("connections", name), str(exc))]
    return resources, errors


def build_resources(specs: Specs, settings: Settings) -> dict[str, Any]:
    """Every connection's resources; raises SpecErrors listing every connection that does not build."""
    resources, errors = resources_by_connection(specs, settings)
    if errors:
        raise SpecErrors([e for errs in errors.values() for e in errs])
    return resources


def build_definitions(specs: Specs, settings: Settings) -> dg.Definitions:
    """Every pipeline as one asset group with its job, checks, schedule and sensor; raises SpecErrors."""
    return compile_graph(build_graph(specs), build_resources(specs, settings))


def compile_graph(graph: Graph, resources: dict[str, Any]) -> dg.Definitions:
    """The Dagster definitions of a checked graph with its built resources."""
    specs = graph.specs
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
        if (watch := pipeline.message_sensor) is not None:
            watched = next(n for n in graph.pipeline_nodes(pipeline.name) if n.name == watch.source)
            sensors.append(message_sensor(pipeline, watch, job, watched))
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources,
        # Runs that are not a pipeline's own job (UI "Materialize", `dagster asset materialize`) use the
        # platform default; a pipeline's `executor:` applies to its job, schedule and sensor.
        executor=executor_def(DEFAULT_EXECUTOR),
    )
