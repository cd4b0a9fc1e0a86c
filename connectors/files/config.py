"""What a file stream reads: which files, in which format, with which options."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FileStream(BaseModel):
    """One stream of records read from files under the connection's base directory."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["file"] = "file"
    path: str = Field(description="File path or glob, relative to the connection's `base_dir`.")
    format: Literal["csv"] = Field("csv", description="File format.")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field delimiter.")
    encoding: str | None = Field(None, description="Text encoding; defaults to the connection's encoding.")
    batch_size: int = Field(10_000, gt=0, description="Rows per batch handed to the destination.")
