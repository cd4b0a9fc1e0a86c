"""What a file stream reads: which files, in which format, with which options."""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FileFormat = Literal["csv", "json", "jsonl", "parquet", "excel"]

# Used when `format` is not set.
FORMAT_BY_SUFFIX: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}


class FileStream(BaseModel):
    """One stream of records read from files under the connection's base directory."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["file"] = "file"
    path: str = Field(description="File path or glob (e.g. 'exports/*.csv', '**/*.jsonl'), relative to `base_dir` "
                      "(a directory, or an s3://, gs://, az:// or sftp:// location).")
    incremental_by: Literal["files", "modified", "name"] = Field(
        "files",
        description="Which files a load reads: 'files' every file not loaded before in this version (size and "
        "modification time or ETag; a rewritten file loads again); 'modified' files modified after the newest "
        "one loaded; 'name' files whose name sorts after the last one loaded (date-stamped names). The cursor "
        "is committed with the rows of each file.")
    format: FileFormat | None = Field(
        None, description="csv, json, jsonl, parquet or excel; by default chosen from each file's extension."
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV field delimiter.")
    quotechar: str = Field('"', min_length=1, max_length=1, description="CSV quote character.")
    encoding: str | None = Field(None, description="Text encoding; defaults to the connection's encoding.")
    batch_size: int = Field(10_000, gt=0, description="Rows per batch handed to the destination.")
    records_path: str | None = Field(
        None, description="JSON only: path to the list of records in the document, e.g. '$.data.items'."
    )
    sheet: str | None = Field(None, description="Excel only: worksheet name; the first sheet by default.")
    on_bad_row: Literal["fail", "skip"] = Field(
        "fail",
        description="A row that cannot be parsed: 'fail' stops the load naming file and line; 'skip' counts "
        "it, logs file:line, and goes on.",
    )
    max_bad_rows: int | None = Field(
        None, ge=0, description="With on_bad_row 'skip': fail anyway once more rows than this were skipped."
    )

    def format_of(self, path: PurePath | str) -> FileFormat | None:
        return self.format or FORMAT_BY_SUFFIX.get(PurePath(path).suffix.lower())
