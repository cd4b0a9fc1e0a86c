"""Materialization metadata in Dagster's standard keys, so the UI shows schemas and plots row counts."""

from __future__ import annotations

from typing import Any

import dagster as dg

from aggregator.destinations.sql import SqlDestination, TableInfo


def table_metadata(info: TableInfo, destination: SqlDestination) -> dict[str, Any]:
    return {
        "dagster/row_count": info.row_count,
        "dagster/table_name": info.name,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=name, type=sql_type) for name, sql_type in info.columns]
        ),
        # sanitized: a password in the URL never reaches the event log
        "destination": destination.display_url,
    }
