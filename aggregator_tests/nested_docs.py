"""Nested JSON documents for tests: a hypothesis strategy of schema-consistent documents, and `rebuild`, which
reads a parent table and its child tables back into documents (the inverse of connectors/nested.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from connectors.nested import LINK_COLUMNS, LIST, LIST_INDEX, PARENT_ID, ROW_ID, SEPARATOR, VALUE

# Keys without `__` (the separator) and never `value`/`list` (the names nesting gives scalars and inner arrays).
KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
SCALARS = {
    "integer": st.integers(-(2**53), 2**53),
    # -0.0 is left out: SQLite stores it as 0.0 (PostgreSQL keeps it).
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: f != 0 or str(f) == "0.0"),
    "boolean": st.booleans(),
    "text": st.text(alphabet="xyz Qé€漢", max_size=8),  # never an ISO date: stays text
}


def schemas(depth: int = 3) -> st.SearchStrategy[Any]:
    """A document shape: a scalar type name, ("object", {key: shape}), or ("array", shape)."""
    scalar = st.sampled_from(sorted(SCALARS))
    if depth == 0:
        return scalar
    inner = schemas(depth - 1)
    return st.one_of(
        scalar,
        st.dictionaries(KEYS, inner, min_size=1, max_size=3).map(lambda d: ("object", d)),
        inner.map(lambda s: ("array", s)),
    )


def documents(shape: Any) -> st.SearchStrategy[Any]:
    """Values of `shape`: objects have every key (no nulls); arrays are non-empty and may hold nulls among
    scalars (null, {} and [] leave no trace in tables, as in dlt, so they are not part of a round trip)."""
    if isinstance(shape, str):
        return SCALARS[shape]
    kind, inner = shape
    if kind == "object":
        return st.fixed_dictionaries({k: documents(v) for k, v in inner.items()})
    element = documents(inner) | st.none() if isinstance(inner, str) else documents(inner)
    return st.lists(element, min_size=1, max_size=3)


def records() -> st.SearchStrategy[list[dict[str, Any]]]:
    """1-6 top-level records sharing one shape."""
    root = st.dictionaries(KEYS, schemas(), min_size=1, max_size=4)
    return root.flatmap(lambda fields: st.lists(documents(("object", fields)), min_size=1, max_size=6))


def rebuild(conn: sa.Connection, table: str) -> list[dict[str, Any]]:
    """The documents stored in `table` and its child tables `table__*`, in `_dlt_id` insertion order."""
    inspector = sa.inspect(conn)
    tables = [t for t in inspector.get_table_names() if t == table or t.startswith(f"{table}{SEPARATOR}")]
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in tables:
        reflected = sa.Table(name, sa.MetaData(), autoload_with=conn)
        rows[name] = [dict(r._mapping) for r in conn.execute(sa.select(reflected))]
    kids: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)  # (parent id, child table) -> rows
    for name, rs in rows.items():
        if name != table:
            for r in rs:
                kids[(r[PARENT_ID], name)].append(r)
    children_of: dict[str, list[str]] = defaultdict(list)
    for parent_id, name in kids:
        children_of[parent_id].append(name)

    def document(row: dict[str, Any], name: str) -> Any:
        fields = {c: v for c, v in row.items() if c not in LINK_COLUMNS}
        if VALUE in fields:
            return fields[VALUE]
        if not fields and not children_of.get(row[ROW_ID]):
            return None  # an array of nulls only: no column could be typed, the rows hold only their links
        out: dict[str, Any] = {}
        for column, value in fields.items():
            if value is not None:
                _put(out, column.split(SEPARATOR), value)
        for child in children_of.get(row[ROW_ID], []):
            elements = [document(r, child) for r in sorted(kids[(row[ROW_ID], child)], key=lambda r: r[LIST_INDEX])]
            relative = child[len(name) + len(SEPARATOR):]
            if relative == LIST and not fields:
                return elements  # an array element that is itself an array
            _put(out, relative.split(SEPARATOR), elements)
        return out

    return [document(r, table) for r in rows.get(table, [])]


def _put(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
