"""Map SQLAlchemy column types to the portable `ColumnType`s batches carry."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from connectors.batches import ColumnType


def portable_type(sql_type: sa.types.TypeEngine[Any]) -> ColumnType:
    """The portable type of a reflected column (anything unrecognised is treated as TEXT)."""
    if isinstance(sql_type, sa.Boolean):
        return ColumnType.BOOLEAN
    if isinstance(sql_type, sa.Integer):
        return ColumnType.INTEGER
    if isinstance(sql_type, (sa.Float, sa.Numeric)):
        return ColumnType.FLOAT
    if isinstance(sql_type, sa.DateTime):
        return ColumnType.TIMESTAMP
    if isinstance(sql_type, sa.Date):
        return ColumnType.DATE
    return ColumnType.TEXT
