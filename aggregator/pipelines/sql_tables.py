"""Transform SQL reads only what its refs name: the tables a statement reads, resolved with sqlglot.

A transform's `{{ ref('name') }}` is both its declared input (Dagster draws the dependency, the scope check
asks for the other pipeline's grant) and its only way to name a table. Refs are replaced by placeholders no
spec can mean otherwise, the statement is parsed for the destination's dialect, and every table it reads
must be a placeholder or a CTE visible where it is read. So `SELECT * FROM shop_orders` in `sales`, a
schema-qualified `main.sqlite_master`, a CTE body reading the real table it shadows, a subquery in a step's
filter, and functions that run SQL text or read files (`query_to_xml`, `pg_read_file`, `load_extension`) are
refused with the transform's file, line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from aggregator.pipelines.refs import REF_RE

PLACEHOLDER = "__aggregator_ref_{index}__"
_PLACEHOLDER_RE = re.compile(r"^__aggregator_ref_\d+__$")

# Table-valued functions that compute rows from their arguments only; any other function in FROM is refused
# (SQLite's `pragma_table_info('shop_orders')`, PostgreSQL's `dblink(...)`).
ROW_FUNCTIONS = frozenset({
    "generate_series", "exploding_generate_series", "json_each", "json_tree", "jsonb_each", "json_each_text",
    "jsonb_each_text", "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "regexp_split_to_table", "unnest",
})

# Functions that read tables named in a string, run SQL text, read files or server state.
_DENIED_FUNCTIONS = re.compile(
    r"^(pg_|lo_|dblink|query_to_|table_to_|schema_to_|database_to_|cursor_to_|current_setting$|set_config$|"
    r"load_extension$|readfile$|writefile$|edit$|fts3_tokenizer$|sqlite_|xpath)"
)
_DENIED_TYPES: tuple[type[exp.Expr], ...] = (exp.ReadCSV, exp.ReadParquet, exp.ToFile)


@dataclass(frozen=True)
class Refused:
    """One thing the statement reads that no ref names, for an error message."""

    what: str  # e.g. "table 'shop_orders'"
    why: str


def dialect_of(url: str | None) -> str | None:
    """sqlglot's dialect for a SQLAlchemy URL (None: sqlglot's default)."""
    if not url:
        return None
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite", "mysql": "mysql"}.get(scheme)


def with_placeholders(sql: str) -> str:
    """`sql` with each `{{ ref(...) }}` replaced by a placeholder table name."""
    index: dict[str, int] = {}
    return REF_RE.sub(lambda m: PLACEHOLDER.format(index=index.setdefault(m.group("name"), len(index))), sql)


def refused_reads(sql: str, dialect: str | None) -> list[Refused]:
    """What a transform's SELECT (refs still in it) reads besides its refs and CTEs; [] when nothing."""
    try:
        statements = [s for s in sqlglot.parse(with_placeholders(sql), read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        return [Refused("the SQL", f"does not parse ({str(exc).splitlines()[0]}), so the tables it reads "
                        "cannot be checked")]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return [Refused("the SQL", "must be exactly one SELECT statement (WITH … SELECT is fine)")]
    return _refused_in(statements[0], dialect)


def refused_in_expression(text: str, dialect: str | None) -> list[Refused]:
    """What a step expression (`filter`, `derive`, a metric) reads: steps name no refs, so any table."""
    try:
        parsed = sqlglot.parse_one(text, read=dialect)
    except (ParseError, TokenError):
        return []  # `aggregator validate` reports an expression that does not parse, with its position
    return _refused_in(parsed, dialect)


def _refused_in(tree: exp.Expr, dialect: str | None) -> list[Refused]:
    refused: list[Refused] = []
    for node in tree.walk():
        if isinstance(node, _DENIED_TYPES):
            refused.append(Refused(f"{node.key.upper()}()", "reads files"))
        elif isinstance(node, exp.Func) and _DENIED_FUNCTIONS.match(_function_name(node, dialect)):
            refused.append(Refused(f"function {_function_name(node, dialect)}()",
                                   "reads tables, files or server state outside the refs"))
        elif isinstance(node, exp.Table):
            problem = _table_problem(node, dialect)
            if problem is not None:
                refused.append(problem)
    return refused


def _function_name(node: exp.Func, dialect: str | None) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql(dialect=dialect).split("(", 1)[0].strip().lower()


def _table_problem(table: exp.Table, dialect: str | None) -> Refused | None:
    if not isinstance(table.this, exp.Identifier):
        name = _function_name(table.this, dialect) if isinstance(table.this, exp.Func) else table.this.key
        if name in ROW_FUNCTIONS:
            return None
        return Refused(f"{name}() in FROM", f"is not a table function a transform may use "
                       f"({', '.join(sorted(ROW_FUNCTIONS))})")
    if table.args.get("db") or table.args.get("catalog"):
        return Refused(f"table {table.sql(dialect=dialect)!r}", "is schema-qualified; read tables with refs")
    ident: exp.Identifier = table.this
    if not ident.quoted and _PLACEHOLDER_RE.match(ident.this):
        return None
    if any(_same_name(ident, cte) for cte in _visible_ctes(table)):
        return None
    return Refused(f"table {ident.this!r}", "is named by no ref")


def _same_name(ref: exp.Identifier, cte: exp.Identifier) -> bool:
    """Whether reading `ref` means the CTE `cte` on every destination. Unquoted names fold (to lower case on
    PostgreSQL; SQLite ignores case), quoted ones do not on PostgreSQL: `WITH "Orders" AS (...) SELECT * FROM
    orders` reads the real table there. Only pairings that mean the CTE everywhere count."""
    if ref.quoted and cte.quoted:
        return bool(ref.this == cte.this)
    if not ref.quoted and not cte.quoted:
        return bool(ref.this.lower() == cte.this.lower())
    quoted, bare = (ref, cte) if ref.quoted else (cte, ref)
    return bool(quoted.this == bare.this == bare.this.lower())


def _visible_ctes(table: exp.Expr) -> list[exp.Identifier]:
    """CTE names a table reference can mean: those of enclosing WITHs, but inside a CTE's own body only the
    ones defined before it (RECURSIVE: itself too). `WITH t AS (SELECT * FROM t)` reads the real table `t`
    in its body."""
    names: list[exp.Identifier] = []
    node: Any = table
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            index = next(i for i, c in enumerate(ctes) if c is node)
            upto = index + 1 if parent.args.get("recursive") else index
            names.extend(_alias(c) for c in ctes[:upto])
        elif isinstance(parent, exp.Query):
            with_ = parent.args.get("with_") or parent.args.get("with")
            if isinstance(with_, exp.With) and node is not with_:
                names.extend(_alias(c) for c in with_.expressions)
        node = parent
    return names


def _alias(cte: exp.Expr) -> exp.Identifier:
    alias = cte.args.get("alias")
    ident = alias.this if isinstance(alias, exp.TableAlias) else None
    return ident if isinstance(ident, exp.Identifier) else exp.to_identifier(cte.alias_or_name)
