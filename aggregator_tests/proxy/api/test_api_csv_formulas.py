"""CSV outputs never carry a formula: cells starting with `= + - @ \\t \\r` are written as text (`'` first),
in query answers and exports alike (issue 18 item 9: `=HYPERLINK(...)` came back as a live formula)."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator

import pytest

from aggregator.proxy.api.csv_safe import FORMULA_PREFIXES, neutralize
from aggregator_tests.proxy.api.conftest import ApiStack

HOSTILE = ['=HYPERLINK("http://127.0.0.1/?"&A1,"x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1,1)", "\t=1", "\r=1"]
# A bare CR inside a value ends the row in a spreadsheet: it must come back quoted, as one cell.
SPLIT = "x\r=HYPERLINK(\"http://127.0.0.1/\")"


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
@pytest.mark.parametrize("rest", ["", "1+1", "HYPERLINK(\"a\")", " "])
def test_every_formula_prefix_is_neutralized(prefix: str, rest: str) -> None:
    assert neutralize(prefix + rest) == "'" + prefix + rest


@pytest.mark.parametrize("value", ["plain", "", "a=b", "'=already", 3, -3, -2.5, None, b"=bytes"])
def test_other_values_are_unchanged(value: object) -> None:
    assert neutralize(value) == value


@pytest.fixture
def formula_rows(api_stack: ApiStack) -> Iterator[list[str]]:
    """Formula text in a table of a pipeline the viewer may read (sales_orders.region), removed after."""
    with sqlite3.connect(api_stack.warehouse) as conn:
        conn.executemany("INSERT INTO sales_orders VALUES (?, ?, 0, 0)",
                         [(10_000 + i, value) for i, value in enumerate([*HOSTILE, SPLIT])])
    yield [*HOSTILE, SPLIT]
    with sqlite3.connect(api_stack.warehouse) as conn:
        conn.execute("DELETE FROM sales_orders WHERE order_id >= 10000")


def _cells(text: str) -> list[str]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(row) == 2 for row in rows), rows
    return [row[1] for row in rows][1:]


def test_query_csv_and_export_neutralize_formulas(api_stack: ApiStack, formula_rows: list[str]) -> None:
    expected = ["'" + value for value in HOSTILE] + [SPLIT]
    with api_stack.client("viewer") as c:
        answer = c.post("/api/query", json={"sql": "SELECT order_id, region FROM sales_orders WHERE order_id >= 10000 "
                                                   "ORDER BY order_id", "format": "csv"})
        export = c.get("/api/assets/sales/orders/export")
        as_json = c.post("/api/query", json={"sql": "SELECT region FROM sales_orders WHERE order_id >= 10000 "
                                                    "ORDER BY order_id"})
    assert answer.status_code == 200 and _cells(answer.text) == expected, answer.text
    exported = [row[1] for row in csv.reader(io.StringIO(export.text, newline="")) if row and row[0].isdigit()
                and int(row[0]) >= 10_000]
    assert exported == expected
    # JSON is data for programs, not a spreadsheet: values come back exactly as stored.
    assert [r[0] for r in as_json.json()["rows"]] == formula_rows
