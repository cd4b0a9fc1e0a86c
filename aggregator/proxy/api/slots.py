"""A count of what each user holds at once (queries, event streams), capped per user and in total."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal


class SlotsFull(Exception):
    """No slot: `which` cap was reached with `held` slots taken (the caller words the refusal)."""

    def __init__(self, which: Literal["user", "total"], held: int) -> None:
        super().__init__(f"{which} cap reached ({held} held)")
        self.which, self.held = which, held


class Slots:
    """At most `size` slots held at once, `per_user` by one user; thread-safe."""

    def __init__(self, size: int, per_user: int) -> None:
        self.size, self.per_user = size, per_user
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def take(self, user: str) -> Callable[[], None]:
        """A slot for `user`, or SlotsFull; returns the function that gives it back (idempotent)."""
        with self._lock:
            mine = self._held.get(user, 0)
            if mine >= self.per_user:
                raise SlotsFull("user", mine)
            if (total := sum(self._held.values())) >= self.size:
                raise SlotsFull("total", total)
            self._held[user] = mine + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._held.get(user, 1) - 1
                if left > 0:
                    self._held[user] = left
                else:
                    self._held.pop(user, None)
        return release

    def held(self, user: str | None = None) -> int:
        with self._lock:
            return self._held.get(user, 0) if user is not None else sum(self._held.values())
