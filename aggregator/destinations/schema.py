"""Schema evolution: compare a batch's columns with the table's and decide what DDL (if any) is allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import IDENTIFIER_RE
from connectors.batches import ColumnType
from connectors.sql.types import portable_type  # noqa: F401  (re-exported for destinations)

# Declared once: the spec's `schema_policy` and `write_mode` fields use these aliases.
SchemaPolicy = Literal["evolve", "freeze", "discard"]
SCHEMA_POLICIES: tuple[str, ...] = get_args(SchemaPolicy)
# What a load does when a column of the table no longer arrives from the source (removed, or renamed: a rename is
# a removal plus a new column).
MissingColumns = Literal["keep", "fail", "accept"]
MISSING_COLUMNS: tuple[str, ...] = get_args(MissingColumns)
WriteMode = Literal["append", "replace", "merge"]
WRITE_MODES: tuple[str, ...] = get_args(WriteMode)

# Column type changes that lose nothing: every old value is exactly representable in the new type.
SAFE_WIDENING: frozenset[tuple[ColumnType, ColumnType]] = frozenset(
    {(ColumnType.INTEGER, ColumnType.FLOAT), (ColumnType.DATE, ColumnType.TIMESTAMP)}
)


def fits(value_type: ColumnType, column_type: ColumnType) -> bool:
    """Whether values of `value_type` can be stored in a column of `column_type` without changing it."""
    return (
        value_type is column_type
        or column_type is ColumnType.TEXT
        or (value_type, column_type) in SAFE_WIDENING
    )


def column_name(name: str) -> str:
    """A source column name as a warehouse column: plain identifiers are kept, others snake_cased.

    Source names come from data (CSV headers, JSON keys), not config, so they are normalized rather than
    rejected: 'Order ID' -> 'order_id', '2nd-choice' -> '_2nd_choice'."""
    if IDENTIFIER_RE.match(name):
        return name
    cleaned = re.sub(r"[^0-9a-zA-Z_]+", "_", name.strip()).strip("_").lower() or "column"
    if cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    return cleaned[:63]


@dataclass
class SchemaPlan:
    """What to do before writing a batch: DDL, batch columns to drop, values to discard, the types to write."""

    add: list[tuple[str, ColumnType]] = field(default_factory=list)  # new columns, at their final type
    widen: list[tuple[str, ColumnType]] = field(default_factory=list)  # existing columns to ALTER
    drop: list[str] = field(default_factory=list)  # new columns whose values are discarded
    # column -> the types of its values that do not fit and become NULL (schema_policy 'discard')
    discard: dict[str, tuple[ColumnType, ...]] = field(default_factory=dict)
    # column -> its type once the plan is applied, for every batch column that is written
    types: dict[str, ColumnType] = field(default_factory=dict)
    # What changed, in order, worded the same whatever the batch size (for metadata and the run log).
    events: list[str] = field(default_factory=list)
    # What the policy forbids: (column, the type of the offending values or None for a new column, error).
    # The caller raises the one whose value comes first in the batch, as one row per batch would.
    errors: list[tuple[str, ColumnType | None, SchemaChangeError]] = field(default_factory=list)

    @property
    def changes_table(self) -> bool:
        return bool(self.add or self.widen)


def _may_widen(policy: SchemaPolicy, creating: bool) -> bool:
    return policy == "evolve" or creating


def plan(
    table: str,
    current: dict[str, ColumnType],
    incoming: dict[str, tuple[ColumnType, ...]],
    policy: SchemaPolicy,
    *,
    creating: bool = False,
) -> SchemaPlan:
    """Compare a batch's columns with the table's (`current`) under `policy`.

    `incoming` maps each batch column to the types of its values in first-seen order, so a type change
    inside one batch is judged exactly like one between batches: the outcome does not depend on the batch
    size. While the load that creates the table runs (`creating`), the table is still being defined: new
    columns are added and safe widenings applied whatever the policy. Otherwise:

    evolve: add new columns, widen safely (integer->float, date->timestamp), fail on anything else.
    freeze: fail on any new column or type change.
    discard: drop new columns' values, and the values of a type that does not fit the column.

    Forbidden changes are listed in `errors`, not raised (see `SchemaPlan.errors`)."""
    result = SchemaPlan()
    for name, seen in incoming.items():
        if not seen:
            continue
        column_type = current.get(name)
        if column_type is None:
            if _may_widen(policy, creating):
                column_type = seen[0]
                if not creating:
                    result.events.append(f"added column {name} ({column_type.value})")
            elif policy == "discard":
                result.drop.append(name)
                continue
            else:
                result.errors.append((name, None, SchemaChangeError(
                    f"table {table}: the source has a new column {name!r} ({seen[0].value}) and "
                    f"schema_policy is 'freeze'; allow it with schema_policy 'evolve', or drop it with 'discard'"
                )))
                continue
            is_new = True
        else:
            is_new = False
        start = column_type
        dropped: list[ColumnType] = []
        for value_type in seen:
            if fits(value_type, column_type):
                continue
            if (column_type, value_type) in SAFE_WIDENING and _may_widen(policy, creating):
                result.events.append(f"widened {name} from {column_type.value} to {value_type.value}")
                column_type = value_type
            elif policy == "discard":
                dropped.append(value_type)
            else:
                allowed = ", ".join(f"{a.value}->{b.value}" for a, b in sorted(SAFE_WIDENING))
                result.errors.append((name, value_type, SchemaChangeError(
                    f"table {table}: column {name!r} is {column_type.value} but the source now sends "
                    f"{value_type.value} values; schema_policy {policy!r} "
                    + ("only widens " + allowed if policy == "evolve" else "allows no type changes")
                    + ". Fix the source, declare the column's type under `columns:`, use schema_policy "
                    "'discard' to drop such values, or drop/rename the column or table to accept the new type"
                )))
                break
        if result.errors and result.errors[-1][0] == name:
            continue
        if is_new:
            result.add.append((name, column_type))
        elif column_type is not start:
            result.widen.append((name, column_type))
        if dropped:
            result.discard[name] = tuple(dropped)
        result.types[name] = column_type
    return result
