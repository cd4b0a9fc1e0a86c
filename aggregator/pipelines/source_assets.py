"""A source node as a Dagster asset: read the stream, load the table, commit the cursor with the rows."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import json
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import dagster as dg

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.graph import Node, asset_kwargs, destination_key
from aggregator.pipelines.liveness import RunLiveness, while_alive
from aggregator.pipelines.metadata import table_metadata
from aggregator.pipelines.preview import preview_metadata
from aggregator.pipelines.progress import with_progress
from aggregator.pipelines.run_tags import tag_run
from connectors.batches import Batch
from connectors.connector_type import as_source
from connectors.streams.base import Acknowledging


def state_key(node: Node) -> str:
    return f"{node.pipeline.name}.{node.name}"


def _window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime] | None:
    if not context.has_partition_key:
        return None
    window = context.partition_time_window
    # Naive wall-clock bounds in the partitions' timezone: warehouses mostly store naive timestamps, and a
    # "+00:00" suffix would make SQLite's text comparison drop the first row of every window.
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


def source_asset(node: Node, partitions_def: dg.PartitionsDefinition | None) -> dg.AssetsDefinition:
    source = node.source
    rules = source.schema_rules
    dest_key = destination_key(node.pipeline.destination)
    # A partitioned run loads exactly its window; a cursor would make windows depend on each other.
    incremental = source.incremental and partitions_def is None

    @dg.asset(
        **asset_kwargs(node),
        kinds={source.stream.type, "sql"},
        required_resource_keys={source.connection, dest_key},
        partitions_def=partitions_def,
        metadata={
            "write_mode": source.write_mode,
            "primary_key": ", ".join(source.primary_key) or "none",
            "incremental": incremental,
        },
    )
    def _load(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        tag_run(context, node.pipeline.name)
        reader = as_source(getattr(context.resources, source.connection), source.connection)
        destination: SqlDestination = getattr(context.resources, dest_key)
        key = state_key(node) if incremental else None
        window = _window(context)
        started = time.monotonic()

        def read_from(state: dict[str, Any] | None) -> Iterable[Batch]:
            # Called by the load once it holds this stream's lock, with the state the last load committed:
            # a run that overlaps another of the same pipeline reads from where that one stopped.
            # The cursor is kept on the source's columns; the mapping renames and drops after it.
            batches = source.mapping.batches(
                reader.read(source.stream, state=state, window=window, hints=source.type_hints()))
            # Between batches, stop (and roll back) if this step's run is gone: no orphan commits.
            alive = while_alive(batches, RunLiveness(context.instance, context.run.run_id))
            return with_progress(alive, context.log.info, f"{node.key.to_user_string()} -> {node.table}")

        result = destination.load(
            node.table,
            read_from,
            source.write_mode,
            primary_key=tuple(source.primary_key),
            schema_policy=rules.changes,
            state_key=key,
            missing_columns=rules.missing_columns,
        )
        if isinstance(reader, Acknowledging):
            # Only now are the rows and the broker position durable: a broker that hands a message out until
            # it is acknowledged (RabbitMQ, MQTT) may forget it now, never before.
            reader.acknowledge(result.state_after)
        context.log.info(
            f"{node.key.to_user_string()}: read {result.rows_read} rows, wrote {result.rows_written} into "
            f"{node.table} ({destination.display_url})"
        )
        for change in result.schema_changes:
            context.log.warning(f"{node.table}: schema change: {change} (schema_policy {rules.changes}, "
                                f"missing_columns {rules.missing_columns})")
        metadata: dict[str, Any] = {
            **table_metadata(result.table, destination),
            "rows_read": result.rows_read,
            "rows_written": result.rows_written,
            "duration_s": round(time.monotonic() - started, 3),
            "schema_changes": dg.MetadataValue.json(list(result.schema_changes)),
            "missing_columns": dg.MetadataValue.json(list(result.missing_columns)),
        }
        if result.child_tables:  # nested arrays: rows written into each child table by this load
            metadata["child_tables"] = dg.MetadataValue.json(result.child_tables)
        if key:
            metadata["cursor_before"] = dg.MetadataValue.json(result.state_before or {})
            metadata["cursor_after"] = dg.MetadataValue.json(json.loads(json.dumps(result.state_after or {}, default=str)))
        metadata.update(preview_metadata(destination, node.table, source.preview_rows, source.sensitive_columns))
        if window:
            metadata["window"] = f"{window[0].isoformat()} – {window[1].isoformat()}"
        return dg.MaterializeResult(metadata=metadata)

    return _load
