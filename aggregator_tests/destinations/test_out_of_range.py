"""Regression: an integer too large for its column failed naming no file, row or column (issue 20, item 7).

Integer columns are BIGINT; a source value past 64 bits is refused by PostgreSQL (COPY: out of range) and by
SQLite's driver (OverflowError). The load now fails naming the origin, the row within it and the column."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.destinations.errors import DestinationError
from aggregator.destinations.sql import SqlDestination
from connectors.files import FilesResource, FileStream

TOO_BIG = 2**64


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_a_file_with_an_integer_past_64_bits_fails_naming_file_row_and_column(
    dest: SqlDestination, tmp_path: Path, mode: str,
) -> None:
    # Three batches of 2 rows from one file: the bad value is the file's 5th record, in the third batch.
    lines = [f'{{"id": {i}, "n": {TOO_BIG if i == 5 else i * 10}}}' for i in range(1, 7)]
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    files = FilesResource(base_dir=str(tmp_path))
    with pytest.raises(DestinationError) as info:
        dest.load("t", files.read(FileStream(path="big.jsonl", batch_size=2)), mode,  # type: ignore[arg-type]
                  primary_key=("id",))
    message = str(info.value)
    assert f"big.jsonl, row 5, column n: {TOO_BIG} does not fit a 64-bit integer column" in message
    assert "Nothing was committed" in message
    assert dest.describe("t").row_count == 0  # the two good batches were rolled back with it


def test_the_largest_64_bit_integers_load(dest: SqlDestination, tmp_path: Path) -> None:
    """The bounds themselves fit: only values past them are refused."""
    (tmp_path / "edge.jsonl").write_text(f'{{"n": {2**63 - 1}}}\n{{"n": {-(2**63)}}}\n')
    result = dest.load("t", FilesResource(base_dir=str(tmp_path)).read(FileStream(path="edge.jsonl")), "append")
    assert result.rows_written == 2
