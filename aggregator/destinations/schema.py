"""Schema evolution: compare a batch's columns with the table's and decide what DDL (if any) is allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from aggregator.destinations.errors import SchemaChangeError
from aggregator.destinations.identifiers import IDENTIFIER_RE
from connectors.batches import ColumnType
from connectors.sql.types import portable_type  # noqa: F401  (re-exported for destinations)

SchemaPolicy = Literal["evolve", "freeze", "discard"]
SCHEMA_POLICIES: tuple[str, ...] = ("evolve", "freeze", "discard")

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
    """What to do before writing a batch: columns to add, columns to widen, batch columns to drop."""

    add: list[tuple[str, ColumnType]] = field(default_factory=list)
    widen: list[tuple[str, ColumnType]] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)

    @property
    def changes_table(self) -> bool:
        return bool(self.add or self.widen)


def plan(
    table: str,
    current: dict[str, ColumnType],
    incoming: dict[str, ColumnType],
    policy: SchemaPolicy,
) -> SchemaPlan:
    """Compare the batch's columns (`incoming`) with the table's (`current`) under `policy`.

    evolve: add new columns, widen safely (integer->float, date->timestamp), fail on anything else.
    freeze: fail on any new column or type change.
    discard: drop new columns' values; fail on type changes (they cannot be discarded without losing rows)."""
    result = SchemaPlan()
    for name, value_type in incoming.items():
        column_type = current.get(name)
        if column_type is None:
            if policy == "evolve":
                result.add.append((name, value_type))
            elif policy == "discard":
                result.drop.append(name)
            else:
                raise SchemaChangeError(
                    f"table {table}: the source has a new column {name!r} ({value_type.value}) and "
                    f"schema_policy is 'freeze'; allow it with schema_policy 'evolve', or drop it with 'discard'"
                )
        elif not fits(value_type, column_type):
            if policy == "evolve" and (column_type, value_type) in SAFE_WIDENING:
                result.widen.append((name, value_type))
                continue
            allowed = ", ".join(f"{a.value}->{b.value}" for a, b in sorted(SAFE_WIDENING))
            raise SchemaChangeError(
                f"table {table}: column {name!r} is {column_type.value} but the source now sends "
                f"{value_type.value} values; schema_policy {policy!r} "
                + ("only widens " + allowed if policy == "evolve" else "allows no type changes")
                + ". Fix the source, or drop/rename the column or table to accept the new type"
            )
    return result
