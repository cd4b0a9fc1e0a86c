"""Compile loaded specs into Dagster definitions: assets, jobs, schedules and resources."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from aggregator.destinations.sql import SqlDestination, TableInfo
from aggregator.pipelines.load import SpecError, SpecErrors, Specs
from aggregator.pipelines.refs import refs_in, render
from aggregator.pipelines.spec import Connection, EnvRef, PipelineSpec, SourceSpec, TransformSpec
from aggregator.settings import Settings
from connectors.files.resource import FilesResource
from connectors.redact import sanitize_url

WAREHOUSE = "warehouse"


@dataclass(frozen=True)
class Node:
    """A source or transform with the table it lands in."""

    pipeline: PipelineSpec
    name: str
    table: str

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.pipeline.name, self.name])


def _value(value: str | EnvRef) -> Any:
    return dg.EnvVar(value.env) if isinstance(value, EnvRef) else value


def build_resource(conn: Connection) -> dg.ConfigurableResource:
    if conn.type == "files":
        return FilesResource(base_dir=conn.base_dir, encoding=conn.encoding)
    return SqlDestination(url=_value(conn.url))


def table_metadata(info: TableInfo, destination: SqlDestination) -> dict[str, Any]:
    """Standard Dagster table metadata, so the UI shows schema and plots row counts."""
    return {
        "dagster/row_count": info.row_count,
        "dagster/table_name": info.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=sql_type) for name, sql_type in info.columns]
        ),
        "destination": destination.display_url,
    }


def _asset_kwargs(pipeline: PipelineSpec, name: str, description: str | None) -> dict[str, Any]:
    return {
        "key": dg.AssetKey([pipeline.name, name]),
        "group_name": pipeline.name,
        "description": description or f"{name} ({pipeline.name} pipeline)",
        "owners": pipeline.owners or None,
        "tags": pipeline.tags or None,
    }


def source_asset(node: Node, source: SourceSpec) -> dg.AssetsDefinition:
    destination_key = node.pipeline.destination

    @dg.asset(
        **_asset_kwargs(node.pipeline, node.name, source.description),
        kinds={source.stream.type, "sql"},
        required_resource_keys={source.connection, destination_key},
        metadata={"primary_key": ", ".join(source.primary_key), "write_mode": source.write_mode},
    )
    def _load(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        reader: FilesResource = getattr(context.resources, source.connection)
        destination: SqlDestination = getattr(context.resources, destination_key)
        started = time.monotonic()
        result = destination.load(node.table, reader.read(source.stream), source.write_mode)
        context.log.info(f"loaded {result.rows_written} rows into {node.table} ({destination.display_url})")
        return dg.MaterializeResult(
            metadata={
                **table_metadata(result.table, destination),
                "rows_written": result.rows_written,
                "duration_s": round(time.monotonic() - started, 3),
            }
        )

    return _load


def transform_asset(node: Node, transform: TransformSpec, upstream: dict[str, Node]) -> dg.AssetsDefinition:
    destination_key = node.pipeline.destination

    @dg.asset(
        **_asset_kwargs(node.pipeline, node.name, transform.description),
        kinds={"sql"},
        deps=[upstream[name].key for name in refs_in(transform.sql)],
        required_resource_keys={destination_key},
    )
    def _transform(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        destination: SqlDestination = getattr(context.resources, destination_key)
        sql = render(transform.sql, lambda name: destination.quote(upstream[name].table))
        started = time.monotonic()
        info = destination.replace_with_query(node.table, sql)
        context.log.info(f"built {node.table}: {info.row_count} rows")
        return dg.MaterializeResult(
            metadata={**table_metadata(info, destination), "duration_s": round(time.monotonic() - started, 3)}
        )

    return _transform


def _resolve_refs(specs: Specs) -> tuple[dict[str, dict[str, Node]], list[SpecError]]:
    """Per pipeline, the nodes each `ref` name resolves to; errors for names that resolve to nothing."""
    nodes: dict[tuple[str, str], Node] = {}
    for pipeline, _, _ in specs.pipelines:
        for item in (*pipeline.sources, *pipeline.transforms):
            nodes[(pipeline.name, item.name)] = Node(pipeline, item.name, item.table or f"{pipeline.name}_{item.name}")
    scopes: dict[str, dict[str, Node]] = {}
    errors: list[SpecError] = []
    for pipeline, sf, index in specs.pipelines:
        scope: dict[str, Node] = {}
        for t_index, transform in enumerate(pipeline.transforms):
            for ref in refs_in(transform.sql):
                owner, _, name = ref.rpartition(".")
                node = nodes.get((owner or pipeline.name, name))
                if node is None:
                    known = sorted(n for (p, n) in nodes if p == (owner or pipeline.name))
                    errors.append(
                        sf.error(
                            ("pipelines", index, "transforms", t_index, "sql"),
                            f"ref({ref!r}) names no source or transform; known in "
                            f"{owner or pipeline.name!r}: {', '.join(known) or 'none'}",
                        )
                    )
                else:
                    scope[ref] = node
        scopes[pipeline.name] = scope
    return scopes, errors


def build_definitions(specs: Specs, settings: Settings) -> dg.Definitions:
    """Every pipeline in `specs` as assets (one group each), a job and a schedule."""
    errors: list[SpecError] = []
    resources: dict[str, Any] = {WAREHOUSE: SqlDestination(url=settings.warehouse_url)}
    for name, (conn, _) in specs.connections.items():
        resources[name] = build_resource(conn)

    scopes, ref_errors = _resolve_refs(specs)
    errors.extend(ref_errors)
    assets: list[dg.AssetsDefinition] = []
    jobs: list[dg.UnresolvedAssetJobDefinition] = []
    schedules: list[dg.ScheduleDefinition] = []
    for pipeline, sf, index in specs.pipelines:
        if pipeline.destination not in resources or not isinstance(resources[pipeline.destination], SqlDestination):
            errors.append(
                sf.error(("pipelines", index, "destination"), f"{pipeline.destination!r} is not a sql connection; "
                         f"use {WAREHOUSE!r} or a connection of type sql")
            )
        for s_index, source in enumerate(pipeline.sources):
            conn = specs.connections.get(source.connection)
            if conn is None:
                errors.append(
                    sf.error(("pipelines", index, "sources", s_index, "connection"),
                             f"unknown connection {source.connection!r}; declared: {', '.join(sorted(specs.connections)) or 'none'}")
                )
                continue
            if conn[0].type != "files":
                errors.append(
                    sf.error(("pipelines", index, "sources", s_index, "stream"),
                             f"a {source.stream.type} stream needs a files connection, {source.connection!r} is {conn[0].type}")
                )
                continue
            table = source.table or f"{pipeline.name}_{source.name}"
            assets.append(source_asset(Node(pipeline, source.name, table), source))
        for transform in pipeline.transforms:
            table = transform.table or f"{pipeline.name}_{transform.name}"
            assets.append(transform_asset(Node(pipeline, transform.name, table), transform, scopes[pipeline.name]))
        job = dg.define_asset_job(
            f"{pipeline.name}_job", selection=dg.AssetSelection.groups(pipeline.name),
            description=pipeline.description,
            # deploy/dagster.yaml limits concurrent runs per pipeline with this tag
            tags={"aggregator/pipeline": pipeline.name},
        )
        jobs.append(job)
        if pipeline.schedule:
            schedules.append(
                dg.ScheduleDefinition(
                    name=f"{pipeline.name}_schedule",
                    job=job,
                    cron_schedule=pipeline.schedule.cron,
                    execution_timezone=pipeline.schedule.timezone,
                    default_status=(
                        dg.DefaultScheduleStatus.RUNNING if pipeline.schedule.enabled else dg.DefaultScheduleStatus.STOPPED
                    ),
                )
            )
    if errors:
        raise SpecErrors(errors)
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules, resources=resources)
