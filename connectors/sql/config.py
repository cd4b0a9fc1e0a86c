"""What a SQL stream reads: a table or a query, optionally incremental by a cursor column."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connectors.errors import ConnectorConfigError

_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class SqlStream(BaseModel):
    """One stream of rows from a database reachable with the connection's SQLAlchemy URL."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["sql"] = "sql"
    table: str | None = Field(
        None, pattern=r"^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="Table or view to read, optionally schema-qualified ('sales.orders'). Set table or query.",
    )
    query: str | None = Field(
        None, description="A SELECT to read instead of a table; incremental and window predicates wrap it."
    )
    columns: list[str] | None = Field(
        None, description="Table only: the columns to read (all by default)."
    )
    cursor_column: str | None = Field(
        None, pattern=_IDENT,
        description="Incremental: only rows with this column greater than the saved cursor are read. It must "
        "grow with every change (an id or a database-maintained updated_at).",
    )
    window_column: str | None = Field(
        None, pattern=_IDENT,
        description="Partitioned loads: rows with window_start <= this column < window_end are read.",
    )
    chunk_size: int = Field(10_000, gt=0, description="Rows fetched per round trip and per batch (server-side cursor).")

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None) -> list[str] | None:
        import re

        for name in value or []:
            if not re.match(_IDENT, name):
                raise ConnectorConfigError(f"column {name!r} is not a plain SQL identifier (letters, digits, _)")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlStream:
        if (self.table is None) == (self.query is None):
            raise ConnectorConfigError("a sql stream needs exactly one of `table` or `query`")
        if self.query is not None and self.columns is not None:
            raise ConnectorConfigError("`columns` applies to `table` streams; select the columns in the query")
        return self
