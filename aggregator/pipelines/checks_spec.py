"""Data quality checks declared in specs; each becomes a Dagster asset check."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DURATION_RE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> dt.timedelta:
    match = DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 90s, 30m, 36h, 2d")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$", description="Check name (default derived).")
    blocking: bool = Field(False, description="A failure stops downstream assets in the same run.")
    description: str | None = Field(None, description="Shown in the Dagster UI.")


class NotNullCheck(_Check):
    type: Literal["not_null"] = "not_null"
    columns: list[str] = Field(min_length=1, description="Columns that must have no NULLs.")

    def default_name(self) -> str:
        return f"not_null_{'_'.join(self.columns)}"


class UniqueCheck(_Check):
    type: Literal["unique"] = "unique"
    columns: list[str] = Field(min_length=1, description="Columns whose combination must be unique.")

    def default_name(self) -> str:
        return f"unique_{'_'.join(self.columns)}"


class AcceptedValuesCheck(_Check):
    type: Literal["accepted_values"] = "accepted_values"
    column: str = Field(description="Column to check.")
    values: list[str | int | float | bool] = Field(min_length=1, description="The only values allowed (NULL is allowed).")

    def default_name(self) -> str:
        return f"accepted_values_{self.column}"


class RowCountCheck(_Check):
    type: Literal["row_count"] = "row_count"
    min: int | None = Field(None, ge=0, description="Fewest rows allowed.")
    max: int | None = Field(None, ge=0, description="Most rows allowed.")

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise ValueError("row_count needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"row_count min ({self.min}) is larger than max ({self.max})")
        return self

    def default_name(self) -> str:
        return "row_count"


class FreshnessCheck(_Check):
    type: Literal["freshness"] = "freshness"
    column: str = Field(description="Timestamp column whose newest value must be recent.")
    max_age: str = Field(description="Largest allowed age of the newest value: 90s, 30m, 36h, 2d.")

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    def default_name(self) -> str:
        return f"freshness_{self.column}"


class SchemaDriftCheck(_Check):
    type: Literal["schema_drift"] = "schema_drift"
    allow_added: bool = Field(False, description="Accept new columns; removed or retyped columns still fail.")

    def default_name(self) -> str:
        return "schema_drift"


Check = Annotated[
    NotNullCheck | UniqueCheck | AcceptedValuesCheck | RowCountCheck | FreshnessCheck | SchemaDriftCheck,
    Field(discriminator="type"),
]
CHECK_TYPES = (NotNullCheck, UniqueCheck, AcceptedValuesCheck, RowCountCheck, FreshnessCheck, SchemaDriftCheck)
