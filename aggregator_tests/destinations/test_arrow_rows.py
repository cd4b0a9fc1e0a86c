"""Arrow batches (what the columnar file readers hand on) load exactly as the same rows as Python tuples, on
both dialects and in every write mode: PostgreSQL takes them as COPY CSV, SQLite through executemany."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from connectors.arrow_rows import ArrowRows, table_from_rows
from connectors.batches import Batch
from connectors.batches import ColumnType as T

TYPES = {"id": T.INTEGER, "name": T.TEXT, "price": T.FLOAT, "flag": T.BOOLEAN, "at": T.TIMESTAMP, "day": T.DATE}
COLUMNS = tuple(TYPES)
# A special float each dialect stores (test_float_values.py: MySQL/MariaDB stores none, and refuses the others).
SPECIAL = {"postgresql": float("nan"), "sqlite": float("-inf"), "mysql": 2.5}
TRICKY_TEXT = ["plain", "", 'a "quoted", value', "two\nlines", "\\.", "back\\slash", "tab\there", "ünï", None]


def _rows(start: int, count: int, special: float) -> list[tuple[Any, ...]]:
    return [
        (i, TRICKY_TEXT[i % len(TRICKY_TEXT)], [1.5, special, -0.0, 1e300, None][i % 5],
         [True, False, None][i % 3], dt.datetime(2024, 1, 1, 12, 0, 0, i % 7 * 1001) if i % 4 else None,
         dt.date(2024, 2, 1) + dt.timedelta(days=i) if i % 6 else None)
        for i in range(start, start + count)
    ]


def _batches(rows: list[tuple[Any, ...]], arrow: bool) -> list[Batch]:
    out = []
    for start in range(0, len(rows), 40):
        chunk = rows[start:start + 40]
        data: Any = ArrowRows(table_from_rows(COLUMNS, TYPES, chunk)) if arrow else chunk
        out.append(Batch(columns=COLUMNS, types=TYPES, rows=data))
    return out


def _table(dest: SqlDestination, table: str) -> list[tuple[Any, ...]]:
    with dest.engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {dest.quote(table)} ORDER BY id"))
        return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in result]


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_arrow_rows_load_like_python_rows(dest: SqlDestination, mode: WriteMode) -> None:
    """Tricky text (quotes, newlines, the COPY end marker, empty vs NULL), NaN or infinity, -0.0, microseconds,
    dates."""
    special = SPECIAL[dest.dialect]
    first, second = _rows(0, 100, special), _rows(50, 100, special)  # the second load overlaps the first by 50 keys
    for arrow, table in ((False, "py"), (True, "arrow")):
        keys = ("id",) if mode == "merge" else ()
        dest.load(table, _batches(first, arrow), mode, primary_key=keys)
        result = dest.load(table, _batches(second, arrow), mode, primary_key=keys)
        assert result.rows_read == 100
    assert _table(dest, "arrow") == _table(dest, "py")
    assert len(_table(dest, "py")) == {"append": 200, "merge": 150, "replace": 100}[mode]


def test_typed_arrow_values_into_a_text_column_render_like_python_rows(dest: SqlDestination) -> None:
    """A column created as text that later receives booleans and timestamps (allowed: text holds anything) must
    store them as the row path does ('t', '2024-01-01 00:00:00'), not in Arrow's spelling."""
    text_types = {"id": T.INTEGER, "flag": T.TEXT, "at": T.TEXT}
    typed = {"id": T.INTEGER, "flag": T.BOOLEAN, "at": T.TIMESTAMP}
    values = [(1, True, dt.datetime(2024, 1, 1)), (2, False, dt.datetime(2024, 1, 1, 0, 0, 1, 500))]
    for arrow, table in ((False, "py"), (True, "arrow")):
        dest.load(table, [Batch(columns=tuple(text_types), types=text_types, rows=[(0, "x", "y")])], "append")
        rows: Any = ArrowRows(table_from_rows(tuple(typed), typed, values)) if arrow else values
        dest.load(table, [Batch(columns=tuple(typed), types=typed, rows=rows)], "append")
    assert _table(dest, "arrow") == _table(dest, "py")


def test_discarded_columns_keep_arrow_rows_columnar(dest: SqlDestination) -> None:
    """schema_policy 'discard' drops new columns from an Arrow batch without turning it into Python rows."""
    dest.load("t", [Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(1,)])], "append")
    table = pa.table({"id": pa.array([2, 3], pa.int64()), "extra": pa.array(["a", "b"])})
    batch = Batch(columns=("id", "extra"), types={"id": T.INTEGER, "extra": T.TEXT}, rows=ArrowRows(table))
    result = dest.load("t", [batch], "append", schema_policy="discard")
    assert result.rows_written == 2
    assert _table(dest, "t") == [(1,), (2,), (3,)]
