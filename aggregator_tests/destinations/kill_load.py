"""Run by test_kill.py in a separate process: load CSV files incrementally, announcing each batch, so the
test can SIGKILL it mid-load. Usage: python kill_load.py <warehouse url> <data dir> step [replace]. With `step`
it waits for a line on stdin after announcing each batch: the test decides when the load moves on, no sleeps.
With `replace` it replaces the table instead of appending to it."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.files import FilesResource, FileStream


def main(url: str, data_dir: str, stepwise: bool = False, mode: WriteMode = "append") -> int:
    dest = SqlDestination(url=url)
    files = FilesResource(base_dir=data_dir)
    stream = FileStream(path="*.csv", batch_size=100)

    def announced(batches: Iterator[Batch]) -> Iterator[Batch]:
        for count, item in enumerate(batches, start=1):
            yield item
            # The destination asked for the next batch: the previous one is written inside the transaction.
            print(f"written {count}", flush=True)
            if stepwise and not sys.stdin.readline():
                raise SystemExit("the test closed stdin")

    result = dest.load("events", announced(files.read(stream, state=dest.read_state("events"))), mode,
                       state_key="events")
    print(f"done {result.rows_written}", flush=True)
    return result.rows_written


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], stepwise="step" in sys.argv[3:], mode="replace" if "replace" in sys.argv[3:] else "append")
