"""Regression: a response cut off mid-body failed at once with a raw `ChunkedEncodingError` naming no URL.

A raw socket server sends a status line and headers, then closes the connection part-way through the body:
either short of its `Content-Length` or inside a chunked body. The first `cut` answers are truncated."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from connectors.errors import HttpRequestError
from connectors.rest import RestApiResource, RestStream

BODY = json.dumps({"data": [{"id": 1}, {"id": 2}, {"id": 3}]}).encode()
SECRET = "k-truncated-secret"


@dataclass
class Truncating:
    url: str
    hits: int = 0


def _answer(conn: socket.socket, style: str, cut: bool) -> None:
    conn.recv(65536)  # the request (small GET): read and ignored
    if style == "length":
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        conn.sendall(head.encode() + (BODY[: len(BODY) // 2] if cut else BODY))
    else:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        half = BODY[: len(BODY) // 2]
        chunks = f"{len(half):x}\r\n".encode() + half + b"\r\n"
        if not cut:
            rest = BODY[len(half):]
            chunks += f"{len(rest):x}\r\n".encode() + rest + b"\r\n0\r\n\r\n"
        conn.sendall(head.encode() + chunks)


@contextmanager
def truncating_server(style: str, cut: int) -> Iterator[Truncating]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    server = Truncating(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue  # look at `stop` again: closing a socket does not wake a blocked accept()
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                server.hits += 1
                _answer(conn, style, cut=server.hits <= cut)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("style", ["length", "chunked"])
def test_a_body_cut_off_is_retried(style: str) -> None:
    with truncating_server(style, cut=2) as server:
        resource = RestApiResource(base_url=server.url, requests_per_second=None, backoff_seconds=0.01, max_attempts=3)
        rows = [row for batch in resource.read(RestStream(path="/items", records_path="data")) for row in batch.rows]
    assert [r[0] for r in rows] == [1, 2, 3]
    assert server.hits == 3


@pytest.mark.parametrize("style", ["length", "chunked"])
def test_a_body_always_cut_off_fails_naming_the_sanitized_url(style: str) -> None:
    auth = {"type": "api_key", "name": "api_key", "location": "query", "key": SECRET}
    with truncating_server(style, cut=100) as server:
        resource = RestApiResource(base_url=server.url, requests_per_second=None, backoff_seconds=0.01,
                                   max_attempts=2, auth=auth)  # type: ignore[arg-type]
        with pytest.raises(HttpRequestError) as info:
            list(resource.read(RestStream(path="/items", records_path="data", params={"q": "x"})))
    message = str(info.value)
    assert f"GET {server.url}/items?" in message and "q=x" in message
    assert "after 2 attempts: ChunkedEncodingError (response cut off)" in message
    assert SECRET not in message and "api_key=***" in message
    assert server.hits == 2
