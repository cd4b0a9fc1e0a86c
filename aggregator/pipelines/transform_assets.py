"""A transform node as a Dagster asset: SQL (or declarative steps) materialized as a table."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import time

import dagster as dg
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node, asset_kwargs, destination_key
from aggregator.pipelines.metadata import table_metadata
from aggregator.pipelines.preview import preview_metadata
from aggregator.pipelines.run_tags import tag_run
from aggregator.pipelines.transform_errors import database_message, explain_probe, locate
from aggregator.pipelines.transform_sql import transform_sql


def transform_failure(node: Node, destination: SqlDestination, exc: BaseException) -> dg.Failure:
    """A failed transform as the spec author reads it: file, line, step, the database's message and the SQL."""
    with destination.engine.connect() as conn:
        error, fragment = locate(node, destination, exc, explain_probe(conn), conn=conn)
    try:
        full_sql = transform_sql(node, destination)
    except (sa.exc.DBAPIError, ValueError):
        full_sql = "(the SQL could not be compiled)"
    return dg.Failure(
        description=f"{error}\n  in: {fragment}",
        metadata={
            "spec": f"{error.file}:{error.line}" if error.line else str(error.file),
            "field": error.field,
            "database_error": database_message(exc),
            "fragment": dg.MetadataValue.md(f"```\n{fragment}\n```"),
            "sql": dg.MetadataValue.md(f"```sql\n{full_sql}\n```"),
        },
        allow_retries=False,
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
        tag_run(context, node.pipeline.name)
        destination: SqlDestination = getattr(context.resources, dest_key)
        started = time.monotonic()
        # A partitioned pipeline's transforms rebuild from all loaded windows: the table is the whole history.
        try:
            sql = transform_sql(node, destination)
            info = destination.replace_with_query(node.table, sql)
        except (sa.exc.DBAPIError, ValueError) as exc:
            # `from None`: the description and metadata carry the database's message and the SQL; the
            # driver's 20-frame stack only buried them.
            raise transform_failure(node, destination, exc) from None
        context.log.info(f"built {node.table}: {info.row_count} rows")
        spec = node.transform
        return dg.MaterializeResult(
            metadata={
                **table_metadata(info, destination),
                "duration_s": round(time.monotonic() - started, 3),
                **preview_metadata(destination, node.table, spec.preview_rows, spec.sensitive_columns),
            }
        )

    return _transform
