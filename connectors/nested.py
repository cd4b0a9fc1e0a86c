"""Nested JSON as relational tables, the way dlt's relational normalizer lays it out.

A nested object's fields become columns of the row named `parent__child` (`address: {city: …}` ->
`address__city`); an array becomes a child table `<table>__<field>` with one row per element, linked to its
parent row. The link columns carry dlt's names so that queries written against a dlt dataset work unchanged:

- `_dlt_id`: every row's own id (root rows: random; child rows: derived from parent id, table and position),
- `_dlt_parent_id`: the `_dlt_id` of the row holding the array,
- `_dlt_list_idx`: the element's position in the array (0-based),
- `_dlt_root_id`: the `_dlt_id` of the top-level row (merge replaces a record's children through it).

An array of scalars gives a child table with a `value` column; an array element that is itself an array
gives a grandchild table `<child>__list`. `max_depth` bounds how many levels are unpacked; anything deeper
is kept as JSON text in one column, as it is with nesting off. Null values, empty objects and empty arrays
leave nothing behind (no column, no child row), as in dlt: a table cannot tell them from a missing key.

Every connector that reads JSON (REST, JSON files, message payloads) types its records through
`tracker_for`, so the shape of the tables depends only on the records and the stream's `nested` option.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.batches import Batch, StreamInfo
from connectors.records import TypeTracker
from connectors.type_hints import TypeHints

SEPARATOR = "__"
ROW_ID = "_dlt_id"
PARENT_ID = "_dlt_parent_id"
LIST_INDEX = "_dlt_list_idx"
ROOT_ID = "_dlt_root_id"
VALUE = "value"
LIST = "list"  # the child of an array element that is itself an array
LINK_COLUMNS = (ROOT_ID, PARENT_ID, LIST_INDEX, ROW_ID)
MAX_IDENTIFIER = 63  # PostgreSQL's limit; the warehouse identifiers are held to it everywhere


class NestedData(BaseModel):
    """How nested objects and arrays in JSON records are laid out in tables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_depth: int | None = Field(
        None, ge=0,
        description="Levels of nesting unpacked: objects into `parent__child` columns, arrays into child tables. "
        "A top-level field's object or array is level 1; deeper values stay JSON text in one column. "
        "None (default): no limit; 0: nothing is unpacked (as without `nested`). dlt calls this max_table_nesting.",
    )
    arrays: Literal["child_tables", "json"] = Field(
        "child_tables",
        description="`child_tables`: each array becomes a table `<table>__<field>` with one row per element, "
        "linked by `_dlt_parent_id`/`_dlt_list_idx` (and `_dlt_root_id`); `json`: arrays stay JSON text columns "
        "and only objects are flattened.",
    )


def shorten(name: str, limit: int = MAX_IDENTIFIER) -> str:
    """`name` if it fits `limit`, else its head and a hash of the whole (stable: the same long path always
    gives the same identifier, and two long paths sharing a head do not collide)."""
    if len(name) <= limit:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=5).hexdigest()
    return f"{name[: limit - len(digest) - 1]}_{digest}"


def child_id(parent_id: str, table: str, index: int) -> str:
    """A child row's `_dlt_id`: derived, so re-reading the same record gives its children the same ids."""
    digest = hashlib.blake2b(f"{parent_id}|{table}|{index}".encode(), digest_size=10).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def root_id() -> str:
    return secrets.token_urlsafe(10)


class Flattener:
    """Flattens records into rows of the root table and rows of its child tables (keyed by path)."""

    def __init__(self, config: NestedData) -> None:
        self.max_depth = config.max_depth
        self.child_tables = config.arrays == "child_tables"

    def _unpacks(self, depth: int) -> bool:
        return self.max_depth is None or depth <= self.max_depth

    def flatten(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """The root rows and, per child table path (`items`, `items__tags`), its rows in record order."""
        rows: list[dict[str, Any]] = []
        children: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            row: dict[str, Any] = {}
            own_id = root_id() if self.child_tables else ""
            self._fields(record, row, "", "", 1, own_id, own_id, children)
            if self.child_tables:
                row[ROW_ID] = own_id
            rows.append(row)
        return rows, children

    def _fields(
        self, obj: Mapping[str, Any], row: dict[str, Any], prefix: str, table: str, depth: int, row_id: str,
        root: str, children: dict[str, list[dict[str, Any]]],
    ) -> None:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if type(value) is dict and self._unpacks(depth):
                self._fields(value, row, f"{name}{SEPARATOR}", table, depth + 1, row_id, root, children)
            elif type(value) is list and self.child_tables and self._unpacks(depth):
                child = f"{table}{SEPARATOR}{name}" if table else name
                self._elements(value, shorten(child), depth, row_id, root, children)
            else:
                row[shorten(name)] = value  # scalars, and objects/arrays past max_depth (JSON text)

    def _elements(
        self, values: list[Any], table: str, depth: int, parent: str, root: str,
        children: dict[str, list[dict[str, Any]]],
    ) -> None:
        if not values:
            return  # an empty array leaves no row behind
        rows = children.setdefault(table, [])
        for index, value in enumerate(values):
            own_id = child_id(parent, table, index)
            row: dict[str, Any] = {}
            if type(value) is dict:
                self._fields(value, row, "", table, depth + 1, own_id, root, children)
            elif type(value) is list and self._unpacks(depth + 1):
                self._elements(value, shorten(f"{table}{SEPARATOR}{LIST}"), depth + 1, own_id, root, children)
            else:
                row[VALUE] = value
            row[ROOT_ID], row[PARENT_ID], row[LIST_INDEX], row[ROW_ID] = root, parent, index, own_id
            rows.append(row)


class NestedTracker:
    """A `TypeTracker` for nested records: the root rows are typed by one tracker (with the declared
    types), each child table's rows by its own, so every table's types carry over between batches."""

    def __init__(self, config: NestedData, hints: TypeHints | None = None) -> None:
        self.flattener = Flattener(config)
        self.hints = hints or TypeHints()
        self.root = TypeTracker(hints=self.hints)
        self.children: dict[str, TypeTracker] = {}

    def from_records(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        origin: str = "",
        state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Batch:
        rows, children = self.flattener.flatten(records)
        batch = self.root.from_records(rows, origin=origin, state=state, extra=extra)
        if not children:
            return batch
        typed = {}
        for path, child_rows in children.items():
            tracker = self.children.get(path)
            if tracker is None:
                # Declared types name root columns; a child table's columns are inferred, dates as the root's.
                tracker = self.children[path] = TypeTracker(
                    hints=TypeHints(detect_timestamps=self.hints.detect_timestamps))
            typed[path] = tracker.from_records(child_rows, origin=origin)
        return dataclasses.replace(batch, children=typed)


def tracker_for(config: NestedData | None, hints: TypeHints | None = None) -> TypeTracker | NestedTracker:
    """The tracker a JSON reader types its records with: nested layout when `config` is set, else one
    JSON text column per nested value (the default)."""
    if config is None or config.max_depth == 0:
        return TypeTracker(hints=hints)
    return NestedTracker(config, hints)


def stream_infos(name: str, batch: Batch | None, detail: str = "") -> list[StreamInfo]:
    """What discovery reports for a first batch: the columns a load of it creates (all-NULL columns are
    not created, so not reported), then one entry per child table, named `<name>__<path>`."""
    if batch is None:
        return [StreamInfo(name=name, columns={}, detail=detail or "no records")]
    infos = [StreamInfo(name=name, columns=created_columns(batch), detail=detail)]
    for path, child in batch.children.items():
        infos.append(StreamInfo(name=f"{name}{SEPARATOR}{path}", columns=created_columns(child),
                                detail=f"child table {path} (linked by {PARENT_ID}, {LIST_INDEX})"))
    return infos


def created_columns(batch: Batch) -> dict[str, Any]:
    """The columns (and types) a load creates for `batch`: typed columns only, in batch order."""
    return {c: batch.types[c] for c in batch.columns if c not in batch.untyped}
