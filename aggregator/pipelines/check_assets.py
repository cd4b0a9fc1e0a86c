"""Spec checks as Dagster asset checks, evaluated with SQL against the destination table."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import datetime as dt
from typing import Any

import dagster as dg
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator.pipelines.checks_spec import (
    AcceptedValuesCheck,
    FreshnessCheck,
    NotNullCheck,
    RowCountCheck,
    SchemaDriftCheck,
    UniqueCheck,
    parse_duration,
)
from aggregator.pipelines.graph import Node, destination_key
from aggregator.pipelines.run_tags import tag_run


def _scalar(destination: SqlDestination, sql: str, params: dict[str, Any] | None = None) -> Any:
    with destination.engine.connect() as conn:
        return conn.execute(sa.text(sql), params or {}).scalar()


def _evaluate(check: Any, node: Node, destination: SqlDestination, context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    q = destination.quote
    table = q(node.table)
    if isinstance(check, NotNullCheck):
        counts = {c: int(_scalar(destination, f"SELECT COUNT(*) FROM {table} WHERE {q(c)} IS NULL")) for c in check.columns}  # noqa: S608 (identifiers quoted by the dialect)
        return dg.AssetCheckResult(passed=not any(counts.values()), metadata={f"null_{c}": n for c, n in counts.items()})
    if isinstance(check, UniqueCheck):
        cols = ", ".join(q(c) for c in check.columns)
        dupes = int(_scalar(destination, f"SELECT COUNT(*) FROM (SELECT {cols} FROM {table} GROUP BY {cols} HAVING COUNT(*) > 1) AS d"))  # noqa: S608 (identifiers quoted by the dialect)
        return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})
    if isinstance(check, AcceptedValuesCheck):
        params = {f"v{i}": v for i, v in enumerate(check.values)}
        placeholders = ", ".join(f":{name}" for name in params)
        col = q(check.column)
        bad = int(_scalar(destination, f"SELECT COUNT(*) FROM {table} WHERE {col} IS NOT NULL AND {col} NOT IN ({placeholders})", params))  # noqa: S608 (identifiers quoted by the dialect)
        return dg.AssetCheckResult(passed=bad == 0, metadata={"rows_with_other_values": bad})
    if isinstance(check, RowCountCheck):
        rows = int(_scalar(destination, f"SELECT COUNT(*) FROM {table}"))  # noqa: S608 (identifiers quoted by the dialect)
        ok = (check.min is None or rows >= check.min) and (check.max is None or rows <= check.max)
        return dg.AssetCheckResult(passed=ok, metadata={"row_count": rows, "min": check.min, "max": check.max})
    if isinstance(check, FreshnessCheck):
        newest = _scalar(destination, f"SELECT MAX({q(check.column)}) FROM {table}")  # noqa: S608 (identifiers quoted by the dialect)
        if newest is None:
            return dg.AssetCheckResult(passed=False, metadata={"newest": "none (empty table)"})
        if isinstance(newest, str):
            newest = dt.datetime.fromisoformat(newest)
        if isinstance(newest, dt.date) and not isinstance(newest, dt.datetime):
            newest = dt.datetime.combine(newest, dt.time())
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=dt.UTC)  # naive timestamps in the warehouse are UTC
        age = dt.datetime.now(dt.UTC) - newest
        return dg.AssetCheckResult(
            passed=age <= parse_duration(check.max_age),
            metadata={"newest": newest.isoformat(), "age_hours": round(age.total_seconds() / 3600, 2), "max_age": check.max_age},
        )
    if isinstance(check, SchemaDriftCheck):
        return _schema_drift(check, node, context)
    raise TypeError(f"unknown check {check!r}")


def _columns_of(record: Any) -> dict[str, str] | None:
    materialization = record.asset_materialization if record else None
    if materialization is None:
        return None
    schema = materialization.metadata.get("dagster/column_schema")
    return {c.name: c.type for c in schema.value.columns} if schema else None


def _schema_drift(check: SchemaDriftCheck, node: Node, context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Compare the latest materialization's column schema with the one before it."""
    records = context.instance.fetch_materializations(node.key, limit=2).records
    if len(records) < 2:
        return dg.AssetCheckResult(passed=True, metadata={"compared": "nothing yet (first materialization)"})
    current, previous = _columns_of(records[0]), _columns_of(records[1])
    if current is None or previous is None:
        return dg.AssetCheckResult(passed=True, metadata={"compared": "no column schema recorded"})
    added = sorted(set(current) - set(previous))
    removed = sorted(set(previous) - set(current))
    retyped = sorted(c for c in set(current) & set(previous) if current[c] != previous[c])
    passed = not removed and not retyped and (check.allow_added or not added)
    return dg.AssetCheckResult(
        passed=passed,
        metadata={"added": ", ".join(added) or "none", "removed": ", ".join(removed) or "none",
                  "retyped": ", ".join(retyped) or "none"},
    )


def check_definitions(node: Node) -> list[dg.AssetChecksDefinition]:
    dest_key = destination_key(node.pipeline.destination)
    defs = []
    for check in node.spec.checks:

        def _build(check: Any = check) -> dg.AssetChecksDefinition:
            @dg.asset_check(
                asset=node.key,
                name=check.name or check.default_name(),
                description=check.description or f"{check.type} check on {node.table}",
                blocking=check.blocking,
                required_resource_keys={dest_key},
            )
            def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
                tag_run(context, node.pipeline.name)  # a run of checks only (the UI's "Execute checks")
                return _evaluate(check, node, getattr(context.resources, dest_key), context)

            return _check

        defs.append(_build())
    return defs
