"""Which SQL `POST /api/query` runs: one SELECT over the caller's tables, nothing that writes or reads files.

Allow-listed by construction: the statement must be a query; every function must be one sqlglot knows
(an unknown name, `Anonymous`, is refused: that is where `pg_read_file`, `lo_import`, `load_extension`,
`dblink` land) and not one that reads files; every table must be a permitted warehouse table or a CTE of
the statement. What runs is the SQL regenerated from the checked tree, never the caller's text.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from aggregator.pipelines.sql_tables import visible_ctes
from aggregator.proxy.api.errors import ApiError

# Node types that write, lock, change settings or touch files, wherever they appear in the tree.
_FORBIDDEN: tuple[type, ...] = (
    exp.DML, exp.DDL, exp.Command, exp.Into, exp.Lock, exp.Pragma, exp.Set, exp.Copy, exp.Merge, exp.Execute,
    exp.ReadCSV, exp.ReadParquet, exp.ToFile, exp.FileFormatProperty,
)


class QueryRefused(ApiError):
    """A statement the guard does not allow: 400 for the shape, 403 for tables outside the grant."""


def check_query(sql: str, dialect: str, allowed_tables: set[str]) -> str:
    """The SQL to run (regenerated from the checked tree), or QueryRefused naming what is not allowed."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        raise QueryRefused(400, f"SQL does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(400, f"send exactly one statement, got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise QueryRefused(400, f"only SELECT queries are allowed, got {statement.key.upper()}")
    for node in statement.walk():
        if isinstance(node, _FORBIDDEN):
            raise QueryRefused(400, f"{node.key.upper()} is not allowed in a read-only query")
        if isinstance(node, exp.Anonymous):
            raise QueryRefused(400, f"function {node.name}() is not allowed: only built-in SQL functions "
                               "that read no files or server state")
        if isinstance(node, exp.Table):
            _check_table(node, _visible_ctes(node), allowed_tables)
        if isinstance(node, exp.Format):
            _check_format(node)
    return statement.sql(dialect=dialect)


# A conversion of a format string: flags, then width and precision (digits or `*`, taken from an argument).
_CONVERSION = re.compile(r"%[-+ 0#,!']*(\d+|\*)?(?:\.(\d+|\*))?")
MAX_FORMAT_WIDTH = 9999


def _check_format(node: exp.Format) -> None:
    """`format('%.*c', 100000000, 'x')` is one database step of seconds that no deadline can interrupt
    (SQLite checks for an interrupt between steps; its printf pads character by character even past the
    length limit). So the format string must be a literal whose widths and precisions are small numbers."""
    template = node.this
    if not (isinstance(template, exp.Literal) and template.is_string):
        raise QueryRefused(400, "format() takes a literal format string")
    for match in _CONVERSION.finditer(template.this):
        for part in match.groups():
            if part == "*" or (part is not None and int(part) > MAX_FORMAT_WIDTH):
                raise QueryRefused(400, f"format() widths and precisions are numbers up to {MAX_FORMAT_WIDTH} "
                                   f"written in the format string, not {match.group(0)!r}")


def _visible_ctes(table: exp.Expression) -> set[str]:
    """CTE names a table reference can mean (pipelines/sql_tables.py: inside a CTE's own body only the ones
    defined before it, so `WITH secret AS (SELECT * FROM secret)` reads the real table), folded to lower case."""
    return {ident.this.lower() for ident in visible_ctes(table)}


def _check_table(table: exp.Table, ctes: set[str], allowed: set[str]) -> None:
    if not isinstance(table.this, exp.Identifier):
        # A table-valued function (generate_series, read_csv, ...): only plain tables may be read.
        raise QueryRefused(400, f"{table.this.key}() in FROM is not allowed; read tables by name")
    if table.args.get("db") or table.args.get("catalog"):
        raise QueryRefused(403, f"table {table.sql()} is outside the tables you may query (no schema-qualified "
                           "names)", missing="viewer:query on tables of your pipelines")
    name = table.name
    if name.lower() in ctes:
        return
    if name not in allowed:
        shown = ", ".join(sorted(allowed)[:20]) or "none"
        raise QueryRefused(403, f"table {name!r} is not a warehouse table of a pipeline in your grant; "
                           f"allowed: {shown}", missing=f"viewer:query on {name}")
