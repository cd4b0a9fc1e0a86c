"""A few rows of a table, for the UI's materialization metadata and `aggregator tables preview`."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Collection
from typing import Any

import dagster as dg
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination

MASK = "***"


def sample(destination: SqlDestination, table: str, limit: int, sensitive: Collection[str]) -> tuple[list[str], list[list[Any]]]:
    """The first `limit` rows of `table`, sensitive columns replaced by a mask before they leave the database
    layer (never logged, never stored)."""
    query = sa.text(f"SELECT * FROM {destination.quote(table)} LIMIT :limit")
    with destination.engine.connect() as conn:
        result = conn.execute(query, {"limit": limit})
        columns = list(result.keys())
        rows = [[MASK if c in sensitive and v is not None else v for c, v in zip(columns, row, strict=True)]
                for row in result]
    return columns, rows


def _cell(value: Any) -> str | int | float | bool | None:
    """A value Dagster's table metadata accepts."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return str(value)


def preview_metadata(destination: SqlDestination, table: str, limit: int, sensitive: Collection[str]) -> dict[str, Any]:
    """`{"preview": table}` with up to `limit` rows, or nothing when previews are off (limit 0)."""
    if limit <= 0:
        return {}
    columns, rows = sample(destination, table, limit, sensitive)
    records = [dg.TableRecord({c: _cell(v) for c, v in zip(columns, row, strict=True)}) for row in rows]
    schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type="string" if c in sensitive else "") for c in columns])
    return {"preview": dg.MetadataValue.table(records=records, schema=schema)}
