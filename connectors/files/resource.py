"""Local files as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from connectors.batches import Batch, ColumnType
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files.config import FileStream
from connectors.files.csv_reader import read_csv


class FilesResource(dg.ConfigurableResource):
    """Reads CSV files below a base directory, streaming them in bounded batches."""

    base_dir: str = Field(description="Directory that stream paths and globs are resolved against.")
    encoding: str = Field("utf-8", description="Default text encoding for streams that do not set one.")

    def _root(self) -> Path:
        return Path(self.base_dir).expanduser().resolve()

    def files(self, stream: FileStream) -> list[Path]:
        """The files a stream reads, sorted so loads are deterministic."""
        if Path(stream.path).is_absolute() or ".." in Path(stream.path).parts:
            raise ConnectorConfigError(
                f"file stream path {stream.path!r} must be relative to base_dir and stay inside it"
            )
        return sorted(p for p in self._root().glob(stream.path) if p.is_file())

    def check(self) -> str:
        """Prove the base directory exists and is readable; returns a one-line summary."""
        root = self._root()
        if not root.is_dir():
            raise ConnectorConfigError(f"base_dir {root} does not exist or is not a directory")
        count = sum(1 for p in root.rglob("*") if p.is_file())
        return f"{root}: readable, {count} files"

    def discover(self, stream: FileStream) -> dict[str, ColumnType]:
        """Columns and inferred types of the first file matched by `stream`."""
        for batch in self.read(stream.model_copy(update={"batch_size": 1000})):
            return dict(batch.types)
        return {}

    def read(self, stream: FileStream) -> Iterator[Batch]:
        """Yield batches from every file the stream matches, in path order."""
        paths = self.files(stream)
        if not paths:
            raise SourceReadError(f"no files match {stream.path!r} under {self._root()}")
        for path in paths:
            yield from read_csv(
                path,
                delimiter=stream.delimiter,
                encoding=stream.encoding or self.encoding,
                batch_size=stream.batch_size,
            )
