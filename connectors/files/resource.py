"""Local files as a Dagster resource: globbed, format-aware, tracked per file so none loads twice."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from connectors.batches import Batch, StreamInfo
from connectors.egress import DATA_ROOTS_ENV, EgressError, check_path, data_roots
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files.arrow_csv import read_csv_columnar
from connectors.files.arrow_json import read_jsonl_columnar
from connectors.files.bad_rows import BadRows
from connectors.files.columnar import read_excel, read_parquet
from connectors.files.config import FORMAT_BY_SUFFIX, FileStream
from connectors.files.json_reader import read_json
from connectors.prefetch import prefetch
from connectors.records import TypeHints, apply_hints
from connectors.strict import reject_unknown


def fingerprint(path: Path) -> str:
    """What identifies one version of a file: a rewritten file (new size or mtime) counts as new."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class FilesResource(dg.ConfigurableResource):
    """Reads CSV, JSON, JSON Lines, Parquet and Excel files below a base directory in bounded batches."""

    base_dir: str = Field(description="Directory that stream paths and globs are resolved against.")
    encoding: str = Field("utf-8", description="Default text encoding for streams that do not set one.")

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)

    def _root(self) -> Path:
        # Symlinks resolved before the check: base_dir may not lead out of the data roots by a link.
        return check_path(self.base_dir, "base_dir")

    def _inside_roots(self, paths: list[Path], root: Path) -> list[Path]:
        """`paths` whose real location is still under a data root; a file linking out is refused by name
        relative to base_dir, never by where it points."""
        roots = data_roots()
        for path in paths:
            real = Path(os.path.realpath(path))
            if not any(real == r or real.is_relative_to(r) for r in roots):
                raise EgressError(f"base_dir: {path.relative_to(root)} links outside the platform's data roots "
                                  f"({DATA_ROOTS_ENV}); connectors may read files only under them")
        return paths

    def files(self, stream: FileStream) -> list[Path]:
        """The files a stream reads, sorted so loads are deterministic."""
        if Path(stream.path).is_absolute() or ".." in Path(stream.path).parts:
            raise ConnectorConfigError(
                f"file stream path {stream.path!r} must be relative to base_dir and stay inside it"
            )
        root = self._root()
        return self._inside_roots(sorted(p for p in root.glob(stream.path) if p.is_file()), root)

    def check(self) -> str:
        """Prove the base directory exists and is readable; returns a one-line summary."""
        root = self._root()
        if not root.is_dir():
            raise ConnectorConfigError(f"base_dir {root} does not exist or is not a directory")
        count = sum(1 for p in root.rglob("*") if p.is_file())
        return f"{root}: readable, {count} files"

    def discover(self, stream: FileStream | None = None) -> list[StreamInfo]:
        """Columns and types per file: of every readable file under base_dir, or of `stream`'s files."""
        root = self._root()
        if stream is None:
            paths = self._inside_roots(
                sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FORMAT_BY_SUFFIX), root)
            base = FileStream.model_validate({"path": "*"})
        else:
            paths, base = self.files(stream), stream
        infos = []
        for path in paths:
            probe = base.model_copy(update={"batch_size": 1000})
            batch = next(self._read_file(path, probe), None)
            columns = dict(batch.types) if batch is not None else {}
            infos.append(StreamInfo(name=str(path.relative_to(root)), columns=columns, detail=str(probe.format_of(path))))
        return infos

    def read(
        self,
        stream: FileStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Generator[Batch, None, None]:
        """Yield batches from every matched file not already in `state`, in path order.

        `state` is {"files": {relative path: fingerprint}}. The last batch of each file carries the state
        including that file; batches in the middle of a file carry None (committing there would reload
        part of the file). `window` keeps files whose modification time falls in [start, end)."""
        paths = self.files(stream)
        if not paths:
            raise SourceReadError(f"no files match {stream.path!r} under {self._root()}")
        done: dict[str, str] = dict((state or {}).get("files", {}))
        root = self._root()
        for path in paths:
            key, mark = str(path.relative_to(root)), fingerprint(path)
            if done.get(key) == mark or not _in_window(path, window):
                continue
            done[key] = mark
            held: Batch | None = None
            # Parsing runs a batch ahead in a thread (Arrow releases the GIL), overlapping the destination's
            # COPY of the previous batch; the queue keeps memory at two batches.
            for batch in prefetch(lambda path=path: self._read_file(path, stream)):  # type: ignore[misc]
                if held is not None:
                    yield held
                held = apply_hints(batch, hints)
            after = {"files": dict(done)}
            if held is None:  # no rows, but the file is still recorded so it is not read again
                held = Batch(columns=(), types={}, rows=[], origin=str(path))
            yield held.with_state(after)

    def _read_file(self, path: Path, stream: FileStream) -> Iterator[Batch]:
        file_format = stream.format_of(path)
        encoding = stream.encoding or self.encoding
        bad_rows = BadRows(path, stream.on_bad_row, stream.max_bad_rows)
        if file_format == "csv":
            delimiter = "\t" if path.suffix.lower() == ".tsv" and stream.delimiter == "," else stream.delimiter
            return read_csv_columnar(path, delimiter=delimiter, quotechar=stream.quotechar, encoding=encoding,
                                     batch_size=stream.batch_size, bad_rows=bad_rows)
        if file_format == "jsonl":
            return read_jsonl_columnar(path, encoding=encoding, batch_size=stream.batch_size, bad_rows=bad_rows)
        if file_format == "json":
            return read_json(path, encoding=encoding, batch_size=stream.batch_size, bad_rows=bad_rows,
                             records_path=stream.records_path)
        if file_format == "parquet":
            return read_parquet(path, batch_size=stream.batch_size)
        if file_format == "excel":
            return read_excel(path, sheet=stream.sheet, batch_size=stream.batch_size)
        raise ConnectorConfigError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; set format to one of "
            "csv, json, jsonl, parquet, excel"
        )


def _in_window(path: Path, window: tuple[dt.datetime, dt.datetime] | None) -> bool:
    if window is None:
        return True
    modified = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)
    start, end = (w if w.tzinfo else w.replace(tzinfo=dt.UTC) for w in window)
    return start <= modified < end
