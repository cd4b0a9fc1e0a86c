"""Stop a load whose run is gone: its run worker died (SIGKILL, OOM) or the run was marked failed/canceled.

A step of a multiprocess run is a child of the run worker. If the worker is killed, the step is orphaned and,
left alone, finishes its load and commits rows nobody will record: the run stays STARTED (until run
monitoring marks it failed) and an append re-run duplicates them. So the load checks, between batches and
once more before committing, that its parent is the process that started it and that its run is still
running; if not, it raises and the load's transaction rolls back, cursor included."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import dagster as dg

T = TypeVar("T")

# Reading the run's status is a storage query: often enough to notice a failed run, rarely enough to cost
# nothing next to the load. The parent check is a system call, done every batch.
STATUS_EVERY_SECONDS = 5.0
_GONE = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.CANCELING)


class RunGoneError(dg.Failure):
    """The run this step belongs to is gone; the load stops and commits nothing."""


class RunLiveness:
    """Answers 'should this step keep loading?' for the step running in this process."""

    def __init__(self, instance: dg.DagsterInstance | None, run_id: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.parent = os.getppid()
        self._checked = time.monotonic()

    def check(self) -> None:
        """Raise RunGoneError if the parent process died or the run is marked failed/canceled."""
        if os.getppid() != self.parent:
            raise RunGoneError(
                description=f"run {self.run_id}: the process that started this step (pid {self.parent}) is gone; "
                "stopping the load without committing anything (rows and cursor stay as they were)"
            )
        if self.instance is None or time.monotonic() - self._checked < STATUS_EVERY_SECONDS:
            return
        self._checked = time.monotonic()
        run = self.instance.get_run_by_id(self.run_id)
        if run is None or run.status in _GONE:
            status = "deleted" if run is None else run.status.value
            raise RunGoneError(
                description=f"run {self.run_id} is marked {status}; stopping the load without committing anything"
            )


def while_alive(items: Iterable[T], liveness: RunLiveness) -> Iterator[T]:
    """`items`, checking before each one and after the last (just before the destination commits)."""
    iterator = iter(items)
    try:
        for item in iterator:
            liveness.check()
            yield item
        liveness.check()
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stop the reader (its prefetch thread, open cursors) with us
