"""Regression: parallel asset steps loading into one SQLite warehouse failed with "database is locked".

Two deferred transactions that each read (schema, state) and then write deadlock in SQLite, which fails one
at once instead of waiting. Destinations now take the write lock when the transaction begins."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch, ColumnType

ROWS = 20_000


def _load(url: str, table: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    dest = SqlDestination(url=url)
    dest.read_state(f"{table}.state")  # a read before the write, as every incremental load does
    # Bounded: if a sibling died before arriving, this one fails too instead of blocking pytest forever.
    barrier.wait(timeout=300)
    batches = (
        Batch(columns=("id", "v"), types={"id": ColumnType.INTEGER, "v": ColumnType.TEXT},
              rows=[(i, f"row {i}") for i in range(start, start + 1000)], state={"cursor": start + 999})
        for start in range(0, ROWS, 1000)
    )
    dest.load(table, batches, "append", state_key=f"{table}.state")


def test_parallel_loads_into_one_sqlite_file_both_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_load, args=(url, f"t{i}", barrier), daemon=True) for i in range(4)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    dest = SqlDestination(url=url)
    assert [dest.describe(f"t{i}").row_count for i in range(4)] == [ROWS] * 4
