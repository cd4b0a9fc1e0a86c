"""The columnar (Arrow) file readers against the row readers they replace, on generated files: the same
columns, types, values, bad rows (file:line and message) and errors, whichever path each block took."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch
from connectors.batches import ColumnType as T
from connectors.errors import SourceReadError
from connectors.files import FilesResource, FileStream
from connectors.files.arrow_csv import read_csv_columnar
from connectors.files.arrow_json import read_jsonl_columnar
from connectors.files.bad_rows import BadRows
from connectors.files.columnar import _arrow_type, read_parquet
from connectors.files.csv_reader import read_csv
from connectors.files.json_reader import read_jsonl
from connectors.records import TypeTracker


class RecordingBadRows(BadRows):
    """The real policy, also remembering every bad row it was told about."""

    def __init__(self, path: Path, policy: str) -> None:
        super().__init__(path, policy, None, log_skipped=False)
        self.seen: list[tuple[int, str]] = []

    def bad(self, line: int, message: str) -> None:
        self.seen.append((line, message))
        super().bad(line, message)


def _outcome(reader: Any, path: Path, policy: str, **options: Any) -> tuple[list[Batch] | str, list[tuple[int, str]]]:
    bad = RecordingBadRows(path, policy)
    try:
        return list(reader(path, bad_rows=bad, **options)), bad.seen
    except SourceReadError as exc:
        return f"error: {exc}", bad.seen


# -- CSV ---------------------------------------------------------------------------------------------------

def _csv_value(kind: str, rng: random.Random, dirt: float) -> str:
    if rng.random() < 0.05:
        return ""
    dirty = rng.random() < dirt
    if kind == "int":
        return rng.choice(["+5", " 7", "1_000", "x1"]) if dirty else str(rng.randint(-10**12, 10**12))
    if kind == "float":
        return rng.choice(["nan", "1e3", " 2.5", "1_0.5", "-inf"]) if dirty else repr(rng.uniform(-1e6, 1e6))
    if kind == "bool":
        return rng.choice(["yes", "NO", "T", "maybe"]) if dirty else rng.choice(["true", "false", "True", "f"])
    if kind == "date":
        day = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
        return day.strftime("%Y%m%d") if dirty else day.isoformat()
    if kind == "timestamp":
        moment = dt.datetime(2020, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 999_999))
        if dirty:
            return rng.choice([moment.isoformat() + "Z", moment.isoformat() + "+02:00", moment.strftime("%Y%m%dT%H%M%S")])
        return rng.choice([moment.isoformat(), moment.isoformat(" "), moment.strftime("%Y-%m-%d %H:%M")])
    return rng.choice(["plain", "with, comma", 'with "quotes"', "multi\nline", "ünïcödé", "  padded  ", "NULL"])


KINDS = ["int", "float", "bool", "date", "timestamp", "text"]


def _write_csv(path: Path, seed: int, rows: int, dirt: float, broken: float) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"{k}_col" for k in KINDS])
        for _ in range(rows):
            roll = rng.random()
            if roll < broken / 2:
                fh.write("\n")  # a blank line: not a row
            elif roll < broken:
                writer.writerow(["too", "few"])
            else:
                writer.writerow([_csv_value(k, rng, dirt) for k in KINDS])


@pytest.mark.parametrize(
    ("seed", "rows", "dirt", "broken"),
    [(0, 3000, 0.0, 0.0), (1, 3000, 0.0, 0.02), (2, 2500, 0.001, 0.01), (3, 2000, 0.02, 0.0), (4, 1500, 0.3, 0.05)],
)
@pytest.mark.parametrize("policy", ["skip", "fail"])
def test_csv_columnar_reader_matches_the_row_reader(tmp_path: Path, seed: int, rows: int, dirt: float, broken: float,
                                                   policy: str) -> None:
    """Differential: generated CSV with typed, dirty (Python-only spellings), blank, short and multi-line rows."""
    path = tmp_path / "data.csv"
    _write_csv(path, seed, rows, dirt, broken)
    options = {"delimiter": ",", "encoding": "utf-8", "batch_size": 700}
    old, old_bad = _outcome(read_csv, path, policy, **options)
    # Small blocks: bad rows and Python fall-backs in many blocks, batches cut across block boundaries.
    new, new_bad = _outcome(read_csv_columnar, path, policy, block_bytes=16_384, **options)
    assert new_bad == old_bad
    if isinstance(old, str) or isinstance(new, str):
        assert new == old
        return
    assert [(b.columns, b.types, len(b)) for b in new] == [(b.columns, b.types, len(b)) for b in old]
    assert repr([list(b.rows) for b in new]) == repr([list(b.rows) for b in old])  # repr: NaN equals NaN
    assert sum(b.extra["bad_rows"] for b in new) == sum(b.extra["bad_rows"] for b in old)
    assert all(isinstance(b.rows, ArrowRows) for b in new)


def test_csv_bad_row_lines_are_physical_lines(tmp_path: Path) -> None:
    """A quoted value spanning lines moves every later line number; both readers name the line in the file."""
    (tmp_path / "a.csv").write_text('id,note\n1,"two\nlines"\n\n2,ok\n3\n4,y,z\n')
    for reader in (read_csv, read_csv_columnar):
        bad = RecordingBadRows(tmp_path / "a.csv", "skip")
        rows = [r for b in reader(tmp_path / "a.csv", delimiter=",", encoding="utf-8", batch_size=10, bad_rows=bad)
                for r in b.rows]
        assert rows == [(1, "two\nlines"), (2, "ok")]
        assert [line for line, _ in bad.seen] == [6, 7], reader


def test_csv_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    """Arrow stops at invalid UTF-8 without a line; the error still says where and which encoding."""
    (tmp_path / "a.csv").write_bytes(b"id,city\n1,Bern\n2,Z\xfcrich\n")
    with pytest.raises(SourceReadError, match=r"a\.csv:3: .*utf-8"):
        list(FilesResource(base_dir=str(tmp_path)).read(FileStream(path="a.csv")))


def test_csv_timestamps_with_offsets_are_stored_as_naive_utc(tmp_path: Path) -> None:
    """PostgreSQL drops an offset cast to `timestamp`: the reader converts to UTC first, as for JSON records."""
    (tmp_path / "a.csv").write_text("at\n2024-01-01T10:00:00+02:00\n2024-01-01T10:00:00Z\n")
    (batch,) = FilesResource(base_dir=str(tmp_path)).read(FileStream(path="a.csv"))
    assert batch.types == {"at": T.TIMESTAMP}
    assert list(batch.rows) == [(dt.datetime(2024, 1, 1, 8),), (dt.datetime(2024, 1, 1, 10),)]


# -- JSON Lines ----------------------------------------------------------------------------------------------

def _record(i: int, rng: random.Random, drift: bool, nested: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": i,
        "price": rng.choice([rng.randint(0, 100), rng.uniform(0, 100)]) if drift else rng.uniform(0, 100),
        "flag": rng.random() < 0.5,
        "name": rng.choice(["a", "b, c", 'q"uote', "ünï", ""]),
        "at": (dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i * 17)).isoformat(),
        "maybe": None if rng.random() < 0.7 else rng.randint(0, 9),
    }
    if rng.random() < 0.1:
        del record["name"]  # records with different key sets
    if drift and i > 1500:
        record["id"] = str(i)  # an integer key that starts sending strings
    if nested and rng.random() < 0.02:
        record["nested"] = {"a": [1, 2], "b": "x"}
    return record


def _write_jsonl(path: Path, seed: int, rows: int, drift: bool, broken: float, nested: bool = False) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            roll = rng.random()
            if roll < broken / 3:
                fh.write("\n")
            elif roll < 2 * broken / 3:
                fh.write('{"id": 1,\n')
            elif roll < broken:
                fh.write("[1, 2]\n")
            else:
                fh.write(json.dumps(_record(i, rng, drift, nested)) + "\n")


def _records_of(batches: list[Batch]) -> list[dict[str, Any]]:
    return [{c: v for c, v in zip(b.columns, row, strict=True) if v is not None} for b in batches for row in b.rows]


@pytest.mark.parametrize(("seed", "drift", "nested"), [(0, False, False), (1, True, False), (2, False, True)])
def test_jsonl_columnar_reader_matches_the_record_reader_on_clean_files(tmp_path: Path, seed: int, drift: bool,
                                                                      nested: bool) -> None:
    """Differential, no bad lines: chunks of lines are the record reader's batches, so they must match exactly."""
    path = tmp_path / "data.jsonl"
    _write_jsonl(path, seed, 2600, drift, broken=0.0, nested=nested)
    options = {"encoding": "utf-8", "batch_size": 500}
    old, _ = _outcome(read_jsonl, path, "fail", **options)
    new, _ = _outcome(read_jsonl_columnar, path, "fail", **options)
    assert not isinstance(old, str) and not isinstance(new, str)
    assert [(set(b.columns), b.types, len(b)) for b in new] == [(set(b.columns), b.types, len(b)) for b in old]
    assert new[0].columns == old[0].columns  # the table is created in the first batch's column order
    assert _records_of(new) == _records_of(old)
    if not nested and not drift:  # nested values and type changes are the records path's job
        assert all(isinstance(b.rows, ArrowRows) for b in new)


@pytest.mark.parametrize("policy", ["skip", "fail"])
def test_jsonl_columnar_reader_matches_the_record_reader_on_bad_lines(tmp_path: Path, policy: str) -> None:
    """Differential with blank, truncated and non-object lines: the same bad lines, rows and values."""
    path = tmp_path / "data.jsonl"
    _write_jsonl(path, 7, 2600, drift=False, broken=0.01)
    old, old_bad = _outcome(read_jsonl, path, policy, encoding="utf-8", batch_size=500)
    new, new_bad = _outcome(read_jsonl_columnar, path, policy, encoding="utf-8", batch_size=500)
    assert new_bad == old_bad
    if isinstance(old, str) or isinstance(new, str):
        assert new == old
        return
    assert _records_of(new) == _records_of(old)
    assert sum(b.extra.get("bad_rows", 0) for b in new) == sum(b.extra.get("bad_rows", 0) for b in old)


@pytest.mark.parametrize("values", [
    ["2024-01-01T00:00:00", "2024-03-04 05:06:07.5"],  # plain timestamps
    ["2024-01-02", "2024-02-03"],  # plain dates
    ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00+02:00"],  # offsets
    ["2024-01-01", "2024-01-01T10:00:00"],  # dates and timestamps mixed
    ["2024-01-01T00:00:00", "not a date"],  # an ISO first value, then text
    ["hello", "2024-01-01"],  # text first
])
def test_jsonl_iso_strings_are_typed_as_the_record_reader_types_them(tmp_path: Path, values: list[str]) -> None:
    """Arrow's JSON parser would make timestamps of ISO strings on its own; the columnar reader follows the
    record reader instead (text, or detected dates/timestamps where it detects them), whatever the shapes."""
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"id": i, "at": v}) + "\n" for i, v in enumerate(values)))
    old, _ = _outcome(read_jsonl, path, "fail", encoding="utf-8", batch_size=100)
    new, _ = _outcome(read_jsonl_columnar, path, "fail", encoding="utf-8", batch_size=100)
    assert not isinstance(old, str) and not isinstance(new, str)
    assert [(b.columns, b.types, list(b.rows)) for b in new] == [(b.columns, b.types, list(b.rows)) for b in old]


def test_jsonl_integers_beyond_64_bits_are_not_rounded(tmp_path: Path) -> None:
    """Arrow would read 99999999999999999999 as a double (1e20); the exact integer is kept."""
    (tmp_path / "a.jsonl").write_text('{"n": 99999999999999999999}\n{"n": 1.5}\n')
    (batch,) = FilesResource(base_dir=str(tmp_path)).read(FileStream(path="a.jsonl"))
    assert [r[0] for r in batch.rows] == [99999999999999999999, 1.5]


# -- Parquet -------------------------------------------------------------------------------------------------

def _parquet_table(rows: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    ints = [rng.randint(-2**40, 2**40) if rng.random() > 0.1 else None for _ in range(rows)]
    base = dt.datetime(2024, 1, 1)
    return pa.table({
        "i32": pa.array([None if v is None else v % 2**31 for v in ints], pa.int32()),
        "i64": pa.array(ints, pa.int64()),
        "u64": pa.array([rng.randint(0, 2**64 - 1) if rng.random() < 0.001 else rng.randint(0, 99) for _ in range(rows)], pa.uint64()),
        "f32": pa.array([rng.uniform(-1, 1) for _ in range(rows)], pa.float32()),
        "f64": pa.array([rng.uniform(-1e9, 1e9) for _ in range(rows)], pa.float64()),
        "dec": pa.array([Decimal(f"{rng.uniform(-1e6, 1e6):.4f}") for _ in range(rows)], pa.decimal128(14, 4)),
        "s": pa.array([rng.choice(["a", "", None, "ü"]) for _ in range(rows)], pa.string()),
        "ls": pa.array([rng.choice(["x", "y"]) for _ in range(rows)], pa.large_string()),
        "cat": pa.array([rng.choice(["p", "q"]) for _ in range(rows)]).dictionary_encode(),
        "b": pa.array([rng.random() < 0.5 for _ in range(rows)]),
        "ts": pa.array([base + dt.timedelta(microseconds=rng.randint(0, 10**12)) for _ in range(rows)], pa.timestamp("us")),
        "tz": pa.array([base + dt.timedelta(seconds=rng.randint(0, 10**6)) for _ in range(rows)], pa.timestamp("us", tz="Europe/Zurich")),
        "d32": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 900)) for _ in range(rows)], pa.date32()),
        "nul": pa.nulls(rows),
        "lst": pa.array([[rng.randint(0, 3)] if rng.random() < 0.5 else None for _ in range(rows)]),
    })


@pytest.mark.parametrize("seed", [0, 1])
def test_parquet_columnar_reader_matches_the_record_path(tmp_path: Path, seed: int) -> None:
    """Differential over many Arrow types (decimals, unsigned overflow, zones, dictionaries, nulls, lists)."""
    path = tmp_path / "data.parquet"
    table = _parquet_table(3000, seed)
    pq.write_table(table, path, row_group_size=1100)
    new = list(read_parquet(path, batch_size=400))
    parquet = pq.ParquetFile(path)
    tracker = TypeTracker({f.name: _arrow_type(f.type) for f in parquet.schema_arrow})
    old = [tracker.from_tuples(tuple(parquet.schema_arrow.names), list(zip(*(c.to_pylist() for c in rb.columns))))
           for rb in parquet.iter_batches(batch_size=400)]
    assert [(b.columns, b.types, len(b)) for b in new] == [(b.columns, b.types, len(b)) for b in old]
    assert [list(b.rows) for b in new] == [list(b.rows) for b in old]


def test_parquet_simple_types_stay_columnar(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2], "at": pa.array([0, 1], pa.timestamp("ms", tz="UTC")), "n": ["a", None]}),
                   tmp_path / "a.parquet")
    (batch,) = read_parquet(tmp_path / "a.parquet", batch_size=10)
    assert isinstance(batch.rows, ArrowRows)
    assert batch.types == {"id": T.INTEGER, "at": T.TIMESTAMP, "n": T.TEXT}
    assert list(batch.rows)[1] == (2, dt.datetime(1970, 1, 1, 0, 0, 0, 1000), None)


# -- bounded batches ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_batches_are_bounded_whatever_the_file_size(tmp_path: Path, fmt: str) -> None:
    """Memory stays flat in file size because no batch exceeds batch_size rows (and blocks are bounded)."""
    rows = 5003
    table = pa.table({"id": list(range(rows)), "name": [f"n{i}" for i in range(rows)]})
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(rows)))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    else:
        pq.write_table(table, path, row_group_size=2000)
    batches = list(FilesResource(base_dir=str(tmp_path)).read(FileStream(path=path.name, batch_size=1000)))
    assert all(len(b) <= 1000 for b in batches)
    assert sum(len(b) for b in batches) == rows
    if fmt != "parquet":  # Parquet batches also end at row-group boundaries
        assert [len(b) for b in batches] == [1000] * 5 + [3]
    assert [r[0] for b in batches for r in b.rows] == list(range(rows))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_file_loads_exactly_once_through_the_columnar_path(tmp_path: Path, fmt: str, warehouse_url: str) -> None:
    """Per-file tracking with Arrow batches on both dialects: a second load of the same files adds nothing, a
    new file adds exactly its rows, and the state commits with them."""
    from aggregator.destinations.sql import SqlDestination

    def write_file(name: str, ids: range) -> None:
        table = pa.table({"id": list(ids), "name": [f"n{i}" for i in ids]})
        if fmt == "csv":
            (tmp_path / name).write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in ids))
        elif fmt == "jsonl":
            (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
        else:
            pq.write_table(table, tmp_path / name)

    files, dest = FilesResource(base_dir=str(tmp_path)), SqlDestination(url=warehouse_url)
    stream = FileStream(path=f"*.{fmt}", batch_size=7)

    def load() -> int:
        state = dest.read_state("files")
        return dest.load("t", files.read(stream, state=state), "append", state_key="files").table.row_count

    write_file(f"a.{fmt}", range(20))
    write_file(f"b.{fmt}", range(20, 35))
    assert load() == 35
    assert load() == 35
    write_file(f"c.{fmt}", range(35, 40))
    assert load() == 40
    with dest.engine.connect() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM t ORDER BY id")]
    assert ids == list(range(40))
    assert set(dest.read_state("files")["files"]) == {f"a.{fmt}", f"b.{fmt}", f"c.{fmt}"}
