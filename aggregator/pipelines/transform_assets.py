"""A transform node as a Dagster asset: SQL (or declarative steps) materialized as a table."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import time

import dagster as dg
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node, asset_kwargs, destination_key
from aggregator.pipelines.metadata import table_metadata
from aggregator.pipelines.refs import render
from aggregator.pipelines.spec import TransformSpec
from aggregator.pipelines.steps import render_steps


def transform_sql(node: Node, destination: SqlDestination) -> str:
    """The SELECT that builds `node`, for the destination's dialect."""
    spec = node.spec
    assert isinstance(spec, TransformSpec)

    def table_for(ref: str) -> str:
        return destination.quote(node.upstream[ref].table)

    if spec.sql is not None:
        return render(spec.sql, table_for)

    def columns_of(sql: str) -> list[str]:
        with destination.engine.connect() as conn:
            return list(conn.execute(sa.text(f"SELECT * FROM ({sql}) AS cols WHERE 1 = 0")).keys())

    return render_steps(
        f"SELECT * FROM {table_for(spec.from_ or '')}",
        spec.steps,
        dialect=destination.dialect,
        quote=destination.quote,
        table_for=table_for,
        columns_of=columns_of,
    )


def transform_asset(
    node: Node,
    partitions_def: dg.PartitionsDefinition | None,
    automation_condition: dg.AutomationCondition | None,
) -> dg.AssetsDefinition:
    dest_key = destination_key(node.pipeline.destination)

    @dg.asset(
        **asset_kwargs(node),
        kinds={"sql"},
        deps=[upstream.key for upstream in node.upstream.values()],
        required_resource_keys={dest_key},
        partitions_def=partitions_def,
        automation_condition=automation_condition,
    )
    def _transform(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        destination: SqlDestination = getattr(context.resources, dest_key)
        started = time.monotonic()
        # A partitioned pipeline's transforms rebuild from all loaded windows: the table is the whole history.
        info = destination.replace_with_query(node.table, transform_sql(node, destination))
        context.log.info(f"built {node.table}: {info.row_count} rows")
        return dg.MaterializeResult(
            metadata={**table_metadata(info, destination), "duration_s": round(time.monotonic() - started, 3)}
        )

    return _transform
