"""Progress of a long load, logged at a steady pace while the batches flow (not once at the end)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator

from connectors.batches import Batch

DEFAULT_EVERY_S = 10.0


def progress_interval() -> float:
    """Seconds between progress lines: AGGREGATOR_PROGRESS_SECONDS, default 10."""
    raw = os.environ.get("AGGREGATOR_PROGRESS_SECONDS")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_EVERY_S
    except ValueError:
        return DEFAULT_EVERY_S


def with_progress(
    batches: Iterable[Batch],
    log: Callable[[str], None],
    what: str,
    every_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Batch]:
    """Yield `batches` unchanged; every `every_s` seconds log rows so far, rows/s and batches (pages or
    files) so far. Checked between batches: a batch is the unit a source hands over."""
    every = progress_interval() if every_s is None else every_s
    started = last = clock()
    rows = 0
    origins: set[str] = set()
    for count, batch in enumerate(batches, start=1):
        rows += len(batch.rows)
        if batch.origin:
            origins.add(batch.origin)
        now = clock()
        if now - last >= every:
            last = now
            elapsed = max(now - started, 1e-9)
            sources = f", {len(origins)} file(s)/endpoint(s)" if len(origins) > 1 else ""
            log(f"{what}: {rows:,} rows so far ({rows / elapsed:,.0f} rows/s), {count} batch(es){sources}, "
                f"{elapsed:.0f} s")
        yield batch
