"""CSV through Arrow's streaming reader: parsed and typed in C++, handed on as Arrow tables for COPY.

Same contract as `csv_reader.read_csv` (the row reader, kept as the reference): types are inferred from the
first rows by the very same code, bad rows go through the same policy with the same messages, and batches
hold `batch_size` rows. Values Arrow's casts cannot take (`+5`, `' 7'`, `1_000`, offsets on timestamps, yes/no
booleans are handled in C++ too) send that block through the row reader's Python parsers, so the results
cannot differ: the fast path only takes what it converts exactly."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.arrow_rows import ARROW_TYPES, ArrowRows, table_from_rows
from connectors.batches import Batch, ColumnType
from connectors.errors import SourceReadError
from connectors.files.bad_rows import BadRows
from connectors.files.csv_reader import CsvHead, read_csv, read_head, undecodable_line
from connectors.files.rebatch import Rebatcher

BLOCK_BYTES = 1 << 20  # Arrow parses this much at a time: bounds memory whatever the file size
_TRUE = pa.array(["true", "t", "yes"])
_FALSE = pa.array(["false", "f", "no"])


def read_csv_columnar(
    path: Path,
    *,
    delimiter: str,
    encoding: str,
    batch_size: int,
    bad_rows: BadRows,
    quotechar: str = '"',
    sample_rows: int = 1000,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Batch]:
    """Yield `Batch`es of `batch_size` rows (the last may be shorter) whose rows are `ArrowRows`."""
    head = read_head(path, delimiter=delimiter, quotechar=quotechar, encoding=encoding, sample_rows=sample_rows)
    if head is None:
        return
    invalid: list[tuple[int, int]] = []  # (record number, fields found) of rows with the wrong width

    def on_invalid_row(row: Any) -> str:
        invalid.append((row.number, row.actual_columns))
        return "skip"  # the policy is applied in file order below, where it may still fail the load

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            use_threads=False,  # serial blocks: bad rows surface in file order, and the other core runs COPY
            block_size=block_bytes, column_names=list(head.columns), skip_rows=1, encoding=arrow_encoding(encoding),
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char=quotechar, double_quote=True, newlines_in_values=True,
            ignore_empty_lines=True, invalid_row_handler=on_invalid_row,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(head.columns, pa.string()), null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    locator = _LineLocator(path, delimiter=delimiter, quotechar=quotechar, encoding=encoding, width=len(head.columns))
    rebatch = Rebatcher(batch_size)
    rows_before = 0  # rows Arrow handed over before this block: the index the locator counts in

    def batch(table: pa.Table) -> Batch:
        return Batch(columns=head.columns, types=head.types, rows=ArrowRows(table), origin=str(path),
                     extra={"bad_rows": bad_rows.take()})

    try:
        for block in reader:
            table, bad_values = _typed(block, head, path)
            if invalid or bad_values:
                expected = f"expected {len(head.columns)} fields ({', '.join(head.columns)}), got "
                lines = locator.find(records={n for n, _ in invalid}, rows={rows_before + i for i, _ in bad_values})
                events = [(lines.records[n], expected + str(found)) for n, found in invalid]
                events += [(lines.rows[rows_before + i], message) for i, message in bad_values]
                invalid.clear()
                for line, message in sorted(events):
                    bad_rows.bad(line, message)
            rows_before += block.num_rows
            for part in rebatch.add(table):
                yield batch(part)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _explained(exc, path, delimiter=delimiter, quotechar=quotechar, encoding=encoding) from exc
    finally:
        locator.close()
    rest = rebatch.flush()
    if rest is not None or bad_rows.total:
        yield batch(rest if rest is not None else _empty(head))


def _typed(block: pa.RecordBatch, head: CsvHead, path: Path) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The block converted to the inferred types, and (row index, message) of rows whose values do not parse."""
    arrays = []
    for name, column in zip(head.columns, block.columns, strict=True):
        converted = _cast(column, head.types[name])
        if converted is None:
            return _typed_in_python(block, head, path)
        arrays.append(converted)
    return pa.Table.from_arrays(arrays, names=list(head.columns)), []


def _cast(column: pa.Array, column_type: ColumnType) -> pa.Array | None:
    """`column` (strings) as `column_type` if Arrow converts every value exactly as the row reader would."""
    if column_type is ColumnType.TEXT:
        return column
    if column_type is ColumnType.BOOLEAN:
        lowered = pc.utf8_lower(column)
        true, false = pc.is_in(lowered, value_set=_TRUE), pc.is_in(lowered, value_set=_FALSE)
        if pc.any(pc.and_(pc.is_valid(column), pc.invert(pc.or_(true, false)))).as_py():
            return None
        return pc.if_else(pc.is_valid(column), true, pa.scalar(None, pa.bool_()))
    try:
        # Arrow's casts accept a subset of what int()/float()/fromisoformat() accept (no offsets, no spaces,
        # no underscores), so what they accept, they convert to the same value.
        return pc.cast(column, ARROW_TYPES[column_type])
    except pa.ArrowInvalid:
        return None


def _typed_in_python(block: pa.RecordBatch, head: CsvHead, path: Path) -> tuple[pa.Table, list[tuple[int, str]]]:
    rows: list[tuple[Any, ...]] = []
    bad: list[tuple[int, str]] = []
    parsers = head.parsers
    for index, raw in enumerate(zip(*(column.to_pylist() for column in block.columns), strict=True)):
        try:
            rows.append(tuple(None if v is None else p(v) for p, v in zip(parsers, raw, strict=True)))
        except ValueError as exc:
            bad.append((index, str(exc)))
    try:
        return table_from_rows(head.columns, head.types, rows), bad
    except (OverflowError, pa.ArrowException) as exc:
        raise SourceReadError(f"{path}: a value does not fit its column's type ({exc}); "
                              "integers must fit in 64 bits") from exc


def _empty(head: CsvHead) -> pa.Table:
    return pa.Table.from_arrays([pa.array([], type=ARROW_TYPES[head.types[c]]) for c in head.columns],
                                names=list(head.columns))


def arrow_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise SourceReadError(f"unknown encoding {encoding!r}") from exc
    return "utf8" if name == "utf-8" else name  # Arrow decodes utf8 natively, anything else through Python


def _explained(exc: Exception, path: Path, *, delimiter: str, quotechar: str, encoding: str) -> SourceReadError:
    """Arrow stops at undecodable or unparseable input without a line number; the row reader, run over the
    same file, stops at the same place and says which line (only on this error path)."""
    undecodable = undecodable_line(path, encoding)
    if undecodable is not None:
        line, reason = undecodable
        return SourceReadError(f"{path}:{line}: {reason} (encoding {encoding!r})")
    quiet = BadRows(path, "skip", None, log_skipped=False)
    try:
        for _ in read_csv(path, delimiter=delimiter, quotechar=quotechar, encoding=encoding, batch_size=10_000,
                          bad_rows=quiet):
            pass
    except SourceReadError as error:
        return error
    return SourceReadError(f"{path}: cannot parse as CSV (encoding {encoding!r}): {exc}")


class _Lines:
    def __init__(self) -> None:
        self.records: dict[int, int] = {}
        self.rows: dict[int, int] = {}


class _LineLocator:
    """Physical line numbers of bad rows, found by a `csv.reader` that follows the file only as far as the last
    bad row asked about (bad rows are the slow path). It numbers records as Arrow's `InvalidRow.number` does
    (header included, blank lines not) and counts rows of the right width as Arrow hands them over."""

    def __init__(self, path: Path, *, delimiter: str, quotechar: str, encoding: str, width: int) -> None:
        self.path, self.width = path, width
        self.delimiter, self.quotechar = delimiter, quotechar
        self.encoding = encoding
        self._reader: Any = None
        self._fh: Any = None
        self.record = 1  # non-blank records read, the header being record 1 (Arrow's numbering)
        self.row = -1  # index of the last well-formed row read

    def find(self, *, records: set[int], rows: set[int]) -> _Lines:
        found = _Lines()
        if self._reader is None:
            self._fh = self.path.open(newline="", encoding=self.encoding)
            self._reader = csv.reader(self._fh, delimiter=self.delimiter, quotechar=self.quotechar)
            next(self._reader, None)  # header
        last_record, last_row = max(records, default=0), max(rows, default=-1)
        for raw in self._reader:
            if not raw:
                continue  # Arrow skips blank lines without numbering them
            self.record += 1
            if len(raw) == self.width:
                self.row += 1
                if self.row in rows:
                    found.rows[self.row] = self._reader.line_num
            elif self.record in records:
                found.records[self.record] = self._reader.line_num
            if self.record >= last_record and self.row >= last_row:
                break
        for number in records - found.records.keys():  # the readers disagree on a malformed file: best effort
            found.records[number] = number
        for index in rows - found.rows.keys():
            found.rows[index] = index + 2
        return found

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
