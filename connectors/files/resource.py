"""Files as a Dagster resource: local or in object storage, globbed, format-aware, incremental per file."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from connectors.batches import Batch, StreamInfo
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files.arrow_csv import read_csv_columnar
from connectors.files.arrow_json import read_jsonl_columnar
from connectors.files.bad_rows import BadRows
from connectors.files.columnar import read_excel, read_parquet
from connectors.files.config import FORMAT_BY_SUFFIX, FileStream
from connectors.files.entry import Entry
from connectors.files.incremental import Cursor
from connectors.files.json_reader import read_json, read_jsonl
from connectors.files.location import Location, check_pattern, open_location
from connectors.files.remote import check_option_names, is_remote
from connectors.nested import stream_infos, tracker_for
from connectors.prefetch import prefetch
from connectors.records import TypeHints, apply_hints
from connectors.strict import reject_unknown


class FilesResource(dg.ConfigurableResource):
    """Reads CSV, JSON, JSON Lines, Parquet and Excel files below a directory or an object-store prefix (s3://,
    gs://, az://, sftp://) in bounded batches."""

    base_dir: str = Field(description="Directory, or s3://bucket/prefix, gs://, az:// or sftp://user@host/path "
                          "location, that stream paths and globs are resolved against.")
    encoding: str = Field("utf-8", description="Default text encoding for streams that do not set one.")
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Remote locations only: options of fsspec's implementation of the scheme, e.g. for s3:// "
        "endpoint_url, key, secret, region; for sftp:// password or private_key and known_hosts or "
        "host_key_fingerprint; for az:// account_name and account_key or sas_token; for gs:// credentials_json "
        "(a service account key) or anon, endpoint_url, project. Credentials as {env: NAME}.")

    def __init__(self, **data: Any) -> None:
        reject_unknown(type(self), data)
        super().__init__(**data)
        if isinstance(self.base_dir, str) and is_remote(self.base_dir):  # names now; values once resolved
            check_option_names(self.base_dir, dict(self.storage_options))

    def location(self) -> Location:
        """Where the files are (local directory or remote prefix), checked against the egress rules."""
        return open_location(self.base_dir, dict(self.storage_options))

    def files(self, stream: FileStream) -> list[Entry]:
        """The files a stream reads, sorted by name so loads are deterministic."""
        check_pattern(stream.path)
        return self.location().entries(stream.path)

    def check(self) -> str:
        """Prove the base directory (or remote prefix) exists and is readable; returns a one-line summary."""
        return self.location().check()

    def discover(self, stream: FileStream | None = None, hints: TypeHints | None = None) -> list[StreamInfo]:
        """Columns and types per file: of every readable file under base_dir, or of `stream`'s files (typed
        as a load types its first batch: declared types win, nested records give their child tables)."""
        location = self.location()
        if stream is None:
            entries = [e for e in location.all_entries() if e.suffix.lower() in FORMAT_BY_SUFFIX]
            base = FileStream.model_validate({"path": "*"})
        else:
            check_pattern(stream.path)
            entries, base = location.entries(stream.path), stream
        infos = []
        for entry in entries:
            probe = base.model_copy(update={"batch_size": 1000})
            with location.local_path(entry) as path:
                batch = next(self._read_file(path, probe, hints=hints), None)
            infos.extend(stream_infos(entry.name, apply_hints(batch, hints) if batch else None,
                                      str(probe.format_of(entry.name))))
        return infos

    def read(
        self,
        stream: FileStream,
        state: dict[str, Any] | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
        hints: TypeHints | None = None,
    ) -> Generator[Batch, None, None]:
        """Yield batches from every matched file the stream's `incremental_by` rule says is new, in order.

        `state` is the cursor (`incremental.py`). The last batch of each file carries the state including that
        file; batches in the middle of a file carry None (committing there would reload part of the file).
        `window` keeps files whose modification time falls in [start, end)."""
        location = self.location()
        check_pattern(stream.path)
        entries = location.entries(stream.path)
        if not entries:
            raise SourceReadError(f"no files match {stream.path!r} under {location.display}")
        cursor = Cursor.start(stream.incremental_by, state)
        for entry in cursor.order(entries):
            if not cursor.is_new(entry) or not _in_window(entry, window):
                continue
            after = cursor.advance(entry)
            with location.local_path(entry) as path:
                held: Batch | None = None
                origin = location.shown(entry)
                # Parsing runs a batch ahead in a thread (Arrow releases the GIL), overlapping the destination's
                # COPY of the previous batch; the queue keeps memory at two batches.
                for batch in prefetch(lambda path=path, origin=origin: self._read_file(path, stream, origin, hints)):  # type: ignore[misc]
                    if held is not None:
                        yield held
                    held = apply_hints(batch, hints)
                if held is None:  # no rows, but the file is still recorded so it is not read again
                    held = Batch(columns=(), types={}, rows=[], origin=origin)
                yield held.with_state(after)

    def _read_file(
        self, path: Path, stream: FileStream, origin: str | None = None, hints: TypeHints | None = None
    ) -> Iterator[Batch]:
        batches = self._parse(path, stream, origin or str(path), hints)
        if origin is None or origin == str(path):
            return batches
        # A remote object read from its temporary copy: batches name the object.
        return (dataclasses.replace(batch, origin=origin) for batch in batches)

    def _parse(self, path: Path, stream: FileStream, origin: str, hints: TypeHints | None = None) -> Iterator[Batch]:
        file_format = stream.format_of(path)
        encoding = stream.encoding or self.encoding
        bad_rows = BadRows(origin, stream.on_bad_row, stream.max_bad_rows)  # skipped rows are logged by name
        if file_format == "csv":
            delimiter = "\t" if path.suffix.lower() == ".tsv" and stream.delimiter == "," else stream.delimiter
            return read_csv_columnar(path, delimiter=delimiter, quotechar=stream.quotechar, encoding=encoding,
                                     batch_size=stream.batch_size, bad_rows=bad_rows)
        # Nested records take the record reader (Arrow's parser hands objects and lists to it anyway).
        tracker = tracker_for(stream.nested, hints) if stream.nested is not None else None
        if file_format == "jsonl" and tracker is not None:
            return read_jsonl(path, encoding=encoding, batch_size=stream.batch_size, bad_rows=bad_rows, tracker=tracker)
        if file_format == "jsonl":
            return read_jsonl_columnar(path, encoding=encoding, batch_size=stream.batch_size, bad_rows=bad_rows)
        if file_format == "json":
            return read_json(path, encoding=encoding, batch_size=stream.batch_size, bad_rows=bad_rows,
                             records_path=stream.records_path, tracker=tracker)
        if file_format == "parquet":
            return read_parquet(path, batch_size=stream.batch_size)
        if file_format == "excel":
            return read_excel(path, sheet=stream.sheet, batch_size=stream.batch_size)
        raise ConnectorConfigError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; set format to one of "
            "csv, json, jsonl, parquet, excel"
        )


def _in_window(entry: Entry, window: tuple[dt.datetime, dt.datetime] | None) -> bool:
    if window is None:
        return True
    start, end = (w if w.tzinfo else w.replace(tzinfo=dt.UTC) for w in window)
    return start <= entry.modified < end
