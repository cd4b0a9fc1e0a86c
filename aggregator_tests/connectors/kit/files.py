"""The files connector's kit source: CSV files in a directory, one more file per `add_rows`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator_tests.connectors.kit import KitSource, kit_row

ROWS_PER_FILE = 50_000


def part_writer(write: Callable[[str, bytes], object]) -> Callable[[range], None]:
    """`add_rows` for a files kit: kit rows as CSV files `part-00001.csv`, … of at most ROWS_PER_FILE rows, each
    handed to `write(name, body)` (a local directory, an SFTP server's, a blob container)."""
    written = [0]

    def add_rows(ids: range) -> None:
        for start in range(ids.start, ids.stop, ROWS_PER_FILE):
            written[0] += 1
            out = io.StringIO(newline="")
            writer = csv.DictWriter(out, fieldnames=["id", "name"])
            writer.writeheader()
            writer.writerows(kit_row(i) for i in range(start, min(start + ROWS_PER_FILE, ids.stop)))
            write(f"part-{written[0]:05d}.csv", out.getvalue().encode())

    return add_rows


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    base = tmp_path / "kit_files"
    base.mkdir()
    add_rows = part_writer(lambda name, body: (base / name).write_bytes(body))
    add_rows(range(1, rows + 1))
    stream = {"type": "file", "path": "*.csv", "batch_size": 500}
    yield KitSource(
        config={"base_dir": str(base)},
        stream=stream,
        incremental_stream=stream,  # files are tracked: a file already loaded is not read again
        add_rows=add_rows,
        # No credentials to leak; a directory outside the data roots and an empty one fail.
        failing=[{"base_dir": "/"}, {"base_dir": str(tmp_path / "nothing_here")}],
    )
