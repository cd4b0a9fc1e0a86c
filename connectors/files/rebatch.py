"""Cut a stream of Arrow tables into tables of exactly `size` rows (the last may be shorter), without copying."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa


class Rebatcher:
    """Columnar readers parse in blocks of bytes; destinations get batches of `batch_size` rows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[pa.Table] = []
        self._rows = 0

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """The full batches that `table` completes. A table with another schema first flushes what is held
        (a type that changed between blocks starts a new batch, as with the row readers)."""
        if table.num_rows == 0:
            return
        if self._parts and not self._parts[0].schema.equals(table.schema):
            rest = self.flush()
            if rest is not None:
                yield rest
        self._parts.append(table)
        self._rows += table.num_rows
        while self._rows >= self.size:
            held = pa.concat_tables(self._parts)  # zero-copy: the chunks are referenced, not moved
            yield held.slice(0, self.size)
            rest = held.slice(self.size)
            self._parts = [rest] if rest.num_rows else []
            self._rows = rest.num_rows

    def flush(self) -> pa.Table | None:
        """What is held, if anything."""
        if not self._parts:
            return None
        held = pa.concat_tables(self._parts)
        self._parts, self._rows = [], 0
        return held
