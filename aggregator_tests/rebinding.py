"""A name service for DNS-rebinding tests: `rebind.test` answers one address to its first lookup and another to
every later one. Only Python's resolver is replaced (`socket.getaddrinfo`, which psycopg, PyMySQL, paramiko and
aiohttp use); every other name resolves as usual."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

NAME = "rebind.test"


class Rebinding:
    """Answers `NAME` with `first` once, then with `then`; counts its answers."""

    def __init__(self, real: Any, first: str, then: str) -> None:
        self.real, self.first, self.then, self.answers = real, first, then, 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        address = self.first if self.answers == 0 else self.then
        self.answers += 1
        return self.real(address, port, *args, **kwargs)


@contextmanager
def rebinding(monkeypatch: pytest.MonkeyPatch, first: str, then: str) -> Iterator[Rebinding]:
    resolver = Rebinding(socket.getaddrinfo, first, then)
    with monkeypatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", resolver)
        yield resolver
