"""Run a producer (e.g. HTTP page fetches) one step ahead in a thread, so network waits overlap with the
consumer's work (type inference, COPY into the warehouse). The queue is bounded: memory stays at `depth`
items, never the whole source."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(produce: Callable[[], Iterator[T]], depth: int = 2) -> Iterator[T]:
    """Yield what `produce()` yields, computed ahead in a daemon thread; its exceptions re-raise here."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce():
                if not put(item):
                    return  # the consumer went away
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            put(exc)

    thread = threading.Thread(target=run, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # An abandoned generator may be finalized by the garbage collector on any thread, this one included.
        if threading.current_thread() is not thread:
            thread.join(timeout=5)
