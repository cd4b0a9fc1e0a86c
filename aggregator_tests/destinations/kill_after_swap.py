"""Run by test_mysql_destination.py in its own process: a replace load with a cursor into MySQL that SIGKILLs
itself right after the atomic RENAME TABLE swap, before its state commits: the window staged.py's docstring
reasons about. Usage: python kill_after_swap.py <warehouse url> <highest source id>."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from aggregator.destinations import state as state_store
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.batches import ColumnType as T


def source(last_id: int) -> Any:
    """Ids above the committed cursor up to `last_id`, in two batches, the cursor on the last."""
    def read(state: dict[str, Any] | None) -> Iterator[Batch]:
        ids = list(range((state or {}).get("cursor", 0) + 1, last_id + 1))
        half = len(ids) // 2
        for chunk, cursor in ((ids[:half], None), (ids[half:], {"cursor": last_id})):
            yield Batch(columns=("id",), types={"id": T.INTEGER}, rows=[(i,) for i in chunk], state=cursor)
    return read


def main(url: str, last_id: int) -> None:
    def killed(*_args: Any, **_kwargs: Any) -> None:
        print("swapped", flush=True)  # the load called for its state write: the new table is in place
        os.kill(os.getpid(), signal.SIGKILL)

    # This process exists to die at exactly this point.
    state_store.write = killed  # type: ignore[assignment]
    SqlDestination(url=url).load("events", source(last_id), "replace", state_key="events")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
