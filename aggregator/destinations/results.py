"""What a load hands back (`LoadResult`, `TableInfo`) and what it may read from (`ReadFrom`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.batches import Batch

# A source read from the committed state: the load calls it once it holds the stream's lock, so the state it
# hands over is the one the previous load committed (see `SqlDestination.load`).
ReadFrom = Callable[[dict[str, Any] | None], Iterable[Batch]]


@dataclass(frozen=True)
class TableInfo:
    """What a table looks like after a load: for asset metadata."""

    name: str
    row_count: int
    columns: tuple[tuple[str, str], ...]  # (name, SQL type as the database reports it)


@dataclass(frozen=True)
class LoadResult:
    rows_written: int  # rows inserted (append/replace) or inserted-or-updated (merge)
    table: TableInfo
    rows_read: int = 0  # rows the source handed over
    state_before: dict[str, Any] | None = None  # committed incremental state when the load started
    state_after: dict[str, Any] | None = None  # committed incremental state when it finished
    schema_changes: tuple[str, ...] = ()  # e.g. "added column note (text)", "widened qty to float"
    missing_columns: tuple[str, ...] = ()  # columns of the table that no batch of this load sent
    rows_skipped: int = 0  # bad rows the source skipped under its bad-row policy
    child_tables: dict[str, int] = dataclasses.field(default_factory=dict)  # nested arrays: rows written per table
