"""FilesResource on real files: every format, bad-row policy, malformed files, per-file tracking, options."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from connectors.batches import ColumnType as T
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files import FilesResource, FileStream

RECORDS: list[dict[str, Any]] = [
    {"id": i, "name": f"n{i}", "price": i + 0.25, "active": i % 2 == 0, "day": dt.date(2024, 1, i)}
    for i in range(1, 8)
]
EXPECTED_TYPES = {"id": T.INTEGER, "name": T.TEXT, "price": T.FLOAT, "active": T.BOOLEAN}


def write(path: Path, fmt: str) -> None:
    if fmt == "csv":
        lines = ["id,name,price,active,day"] + [
            f"{r['id']},{r['name']},{r['price']},{str(r['active']).lower()},{r['day']}" for r in RECORDS]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({**r, "day": str(r["day"])}) + "\n" for r in RECORDS))
    elif fmt == "json":
        path.write_text(json.dumps({"data": [{**r, "day": str(r["day"])} for r in RECORDS]}))
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(RECORDS), path)
    elif fmt == "excel":
        book = Workbook()
        sheet = book.active
        sheet.title = "export"
        sheet.append(list(RECORDS[0]))
        for r in RECORDS:
            sheet.append([r["id"], r["name"], r["price"], r["active"], dt.datetime.combine(r["day"], dt.time())])
        book.save(path)


SUFFIX = {"csv": "csv", "jsonl": "jsonl", "json": "json", "parquet": "parquet", "excel": "xlsx"}


@pytest.mark.parametrize("fmt", sorted(SUFFIX))
def test_every_format_reads_the_same_records(tmp_path: Path, fmt: str) -> None:
    write(tmp_path / f"data.{SUFFIX[fmt]}", fmt)
    files = FilesResource(base_dir=str(tmp_path))
    stream = FileStream(path="data.*", batch_size=3, records_path="data" if fmt == "json" else None)
    batches = list(files.read(stream))
    assert [len(b) for b in batches] == [3, 3, 1]
    rows = [dict(zip(b.columns, r)) for b in batches for r in b.rows]
    assert [(r["id"], r["name"], r["price"], r["active"]) for r in rows] == [
        (r["id"], r["name"], r["price"], r["active"]) for r in RECORDS]
    assert {k: batches[0].types[k] for k in EXPECTED_TYPES} == EXPECTED_TYPES
    assert batches[-1].state is not None and all(b.state is None for b in batches[:-1])
    (info,) = files.discover(stream)
    assert info.name == f"data.{SUFFIX[fmt]}" and set(info.columns) == set(RECORDS[0])


def test_bad_csv_row_fails_naming_file_and_line(tmp_path: Path) -> None:
    # Types are inferred from the first 1000 rows; row 1202 then breaks the integer column, row 1203 the width.
    body = "".join(f"{i},{i * 2}\n" for i in range(1200))
    (tmp_path / "a.csv").write_text("id,qty\n" + body + "1200,three\n1201\n1202,7\n")
    files = FilesResource(base_dir=str(tmp_path))
    with pytest.raises(SourceReadError, match=r"a\.csv:1202: invalid literal for int"):
        list(files.read(FileStream(path="a.csv")))
    batches = list(files.read(FileStream(path="a.csv", on_bad_row="skip", batch_size=500)))
    assert [r[0] for b in batches for r in b.rows] == [*range(1200), 1202]
    assert sum(b.extra["bad_rows"] for b in batches) == 2
    with pytest.raises(SourceReadError, match=r"a\.csv:1203: expected 2 fields .*more than max_bad_rows=1"):
        list(files.read(FileStream(path="a.csv", on_bad_row="skip", max_bad_rows=1)))


def test_malformed_jsonl_line_and_json_file(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1}\n{"id": 2,\n{"id": 3}\n')
    (tmp_path / "b.json").write_text('[{"id": 1},\n {"id": 2]')
    files = FilesResource(base_dir=str(tmp_path))
    with pytest.raises(SourceReadError, match=r"a\.jsonl:2: invalid JSON"):
        list(files.read(FileStream(path="a.jsonl")))
    assert [r for b in files.read(FileStream(path="a.jsonl", on_bad_row="skip")) for r in b.rows] == [(1,), (3,)]
    with pytest.raises(SourceReadError, match=r"b\.json:2: invalid JSON"):
        list(files.read(FileStream(path="b.json")))


@pytest.mark.parametrize("name", ["broken.parquet", "broken.xlsx"])
def test_malformed_binary_file_names_the_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"definitely not a real file")
    with pytest.raises(SourceReadError, match=name.replace(".", r"\.")):
        list(FilesResource(base_dir=str(tmp_path)).read(FileStream(path=name)))


def test_each_file_is_loaded_once(tmp_path: Path) -> None:
    write(tmp_path / "one.csv", "csv")
    files = FilesResource(base_dir=str(tmp_path))
    stream = FileStream(path="*.csv")
    state = list(files.read(stream))[-1].state
    assert state is not None and list(state["files"]) == ["one.csv"]
    assert list(files.read(stream, state=state)) == []
    write(tmp_path / "two.csv", "csv")
    new = list(files.read(stream, state=state))
    assert {b.origin for b in new} == {str(tmp_path / "two.csv")}
    newest = new[-1].state
    assert newest is not None and list(newest["files"]) == ["one.csv", "two.csv"]
    os.utime(tmp_path / "one.csv", ns=(1, 1))  # rewritten: a new version of the file is loaded again
    assert {b.origin for b in files.read(stream, state=newest)} == {str(tmp_path / "one.csv")}


def test_encoding_and_delimiter_options(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("id;city\n1;Zürich\n2;Malmö\n".encode("latin-1"))
    files = FilesResource(base_dir=str(tmp_path))
    with pytest.raises(SourceReadError, match=r"latin\.csv.*utf-8"):
        list(files.read(FileStream(path="latin.csv", delimiter=";")))
    (batch,) = files.read(FileStream(path="latin.csv", delimiter=";", encoding="latin-1"))
    assert batch.rows == [(1, "Zürich"), (2, "Malmö")]


def test_globs_and_paths_outside_base_dir(tmp_path: Path) -> None:
    (tmp_path / "2024" / "01").mkdir(parents=True)
    write(tmp_path / "2024" / "01" / "a.jsonl", "jsonl")
    write(tmp_path / "2024" / "b.jsonl", "jsonl")
    files = FilesResource(base_dir=str(tmp_path))
    assert len({b.origin for b in files.read(FileStream(path="**/*.jsonl"))}) == 2
    with pytest.raises(ConnectorConfigError, match="inside it"):
        files.files(FileStream(path="../*.csv"))
    with pytest.raises(SourceReadError, match="no files match"):
        list(files.read(FileStream(path="*.csv")))
    assert "readable, 2 files" in files.check()
