"""A source's column mapping (`columns: {src: {rename: name}}`, `{exclude: true}`): checked in the spec, applied
to every batch between the connector and the destination.

The connector reads, types (declared `type:` included) and keeps its cursor on the source's own column names;
the mapping then drops excluded columns and renames the rest, so the destination, `primary_key`, checks,
`sensitive_columns`, previews and the schema comparison all speak of the table's columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from connectors.arrow_rows import ArrowRows
from connectors.batches import Batch
from connectors.nested import LINK_COLUMNS, SEPARATOR

# Columns the platform writes and relies on (dlt's nested-table links, the replace row order).
RESERVED = frozenset({*LINK_COLUMNS, "_aggregator_ord"})

Loc = tuple[str | int, ...]
T = TypeVar("T")


class MappingConflict(ValueError):
    """A batch whose columns the mapping cannot apply to without losing data (a rename onto a sent column)."""


@dataclass(frozen=True)
class ColumnMapping:
    """Source column -> table column renames and the source columns that never reach the table."""

    renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
    excluded: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.renames or self.excluded)

    def source_name(self, column: str) -> str:
        """The source column a table column comes from."""
        for source, table in self.renames.items():
            if table == column:
                return source
        return column

    def dropped(self, columns: Iterable[str]) -> set[str]:
        """Which of `columns` an exclusion removes: an excluded column, and when the excluded name is a nested
        object that was flattened (no column of that name, only `name__child` ones), all of its columns: an
        excluded `address` must not reach the table as `address__city` (the name users see at the source)."""
        present = set(columns)
        objects = [ex for ex in self.excluded if ex not in present]
        return {c for c in present
                if c in self.excluded or any(c.startswith(ex + SEPARATOR) for ex in objects)}

    def columns(self, columns: Mapping[str, T]) -> dict[str, T]:
        """`{source column: value}` as `{table column: value}` (discovered schemas), excluded ones left out."""
        dropped = self.dropped(columns)
        return {self.renames.get(c, c): value for c, value in columns.items() if c not in dropped}

    def _child_excluded(self, path: str) -> bool:
        return any(path == ex or path.startswith(ex + SEPARATOR) for ex in self.excluded)

    def batch(self, batch: Batch) -> Batch:
        """`batch` with excluded columns (and excluded arrays' child tables) dropped and the rest renamed."""
        if not self:
            return batch
        dropped = self.dropped(batch.columns)
        keep = [i for i, c in enumerate(batch.columns) if c not in dropped]
        names = tuple(self.renames.get(batch.columns[i], batch.columns[i]) for i in keep)
        if len(set(names)) != len(names):
            sent = [c for c in batch.columns if c not in dropped]
            clash = next(n for n in names if names.count(n) > 1)
            sources = [c for c, n in zip(sent, names, strict=True) if n == clash]
            raise MappingConflict(
                f"{batch.origin or 'source'}: columns {sources[0]!r} and {sources[1]!r} would both land in table "
                f"column {clash!r} (spec `columns:` renames one onto a column the source sends); rename or "
                "exclude the other one too"
            )
        children = {p: b for p, b in batch.children.items() if not self._child_excluded(p)}
        if len(keep) == len(batch.columns) and names == batch.columns and len(children) == len(batch.children):
            return batch
        old = [batch.columns[i] for i in keep]
        rows: Sequence[tuple[Any, ...]]
        if isinstance(batch.rows, ArrowRows):
            # Stays columnar (COPY writes it as it is): zero-copy select, names as the table has them.
            rows = ArrowRows(batch.rows.table.select(keep).rename_columns(list(names)))
        elif len(keep) == len(batch.columns):
            rows = batch.rows
        else:
            rows = [tuple(row[i] for i in keep) for row in batch.rows]
        return dataclasses.replace(
            batch,
            columns=names,
            types={n: batch.types[c] for c, n in zip(old, names, strict=True)},
            rows=rows,
            mixed={self.renames.get(c, c): t for c, t in batch.mixed.items() if c not in dropped},
            untyped=frozenset(self.renames.get(c, c) for c in batch.untyped if c not in dropped),
            children=children,
        )

    def batches(self, batches: Iterable[Batch]) -> Generator[Batch, None, None]:
        """Every batch mapped; closing this closes `batches` (a reader stops fetching)."""
        try:
            for batch in batches:
                yield self.batch(batch)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def check_mapping(
    columns: Iterable[str],
    renames: Mapping[str, str],
    excluded: Iterable[str],
    references: Iterable[tuple[Loc, str]],
    cursor_column: str | None,
) -> list[tuple[Loc, str]]:
    """Where a source's mapping contradicts itself or the names the rest of the source uses: (loc, message).

    `columns` are the source columns the spec names; `references` the table column names its `primary_key`,
    checks and `sensitive_columns` use, with where they are written."""
    errors: list[tuple[Loc, str]] = []
    excluded = set(excluded)
    # Source columns the spec names that land under their own name (a swap a->b, b->a is fine).
    kept = {c for c in columns if c not in excluded and renames.get(c, c) == c}
    targets: dict[str, str] = {}
    for source, table in renames.items():
        loc: Loc = ("columns", source, "rename")
        if source in RESERVED or table in RESERVED:
            errors.append((loc, (f"{source!r} -> {table!r}: the platform's own columns "
                           f"({', '.join(sorted(RESERVED))}) are not renamed")))
        elif table in targets:
            errors.append((loc, (f"{source!r} and {targets[table]!r} are both renamed to {table!r}; a table "
                           "column holds one source column")))
        elif table != source and table in kept:
            errors.append((loc, (f"{source!r} is renamed to {table!r}, which is also a source column kept under "
                           f"that name; rename or exclude {table!r} too")))
        targets.setdefault(table, source)
    for source in sorted(excluded & RESERVED):
        errors.append((("columns", source, "exclude"), (f"{source!r} is one of the platform's own columns and "
                       "cannot be excluded")))
    if cursor_column is not None and cursor_column in excluded:
        errors.append((("columns", cursor_column, "exclude"), (f"{cursor_column!r} is the column the incremental "
                       "cursor reads; it stays in the table so where a load stopped can be seen there (rename it if the name is "
                       "the problem)")))
    for loc, name in references:
        if name in targets:
            continue  # a table column some source column is renamed to
        if name in excluded:
            errors.append((loc, f"{name!r} is excluded in `columns:`, so the table has no such column"))
        elif name in renames:
            errors.append((loc, (f"{name!r} is renamed to {renames[name]!r} in `columns:`; this names the "
                           f"table's column: write {renames[name]!r}")))
    return errors


def raise_located(title: str, errors: list[tuple[Loc, str]]) -> None:
    """Raise `errors` as one pydantic ValidationError at their own locations (file:line of the field)."""
    if errors:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("column_mapping", "{message}", {"message": message}),
                             loc=loc, input=None)
            for loc, message in errors
        ])
