"""A small keep-alive HTTP/1.1 client for the hop to the webserver.

Why not httpx here: measured on the bench machine, httpx spends ~2 ms of CPU per request on its models,
pool and async wrappers, ten times what this hop needs, and the proxy's CPU is taken from the webserver on
the same host. The upstream is one trusted, local webserver speaking HTTP/1.1, so the client only has to
frame requests it builds itself and parse Content-Length, chunked, and close-delimited responses. Streamed
request bodies (report_asset_* uploads) still go through httpx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IDLE_S = 4.0  # below uvicorn's default keep-alive timeout (5 s), so the server never closes one under us
MAX_HEAD = 64 * 1024
NO_BODY_STATUS = {204, 304}


class UpstreamError(Exception):
    """The webserver could not be reached or answered something that is not HTTP/1.1."""


class _StaleConnection(UpstreamError):
    """The connection ended before the first response byte: the server had closed an idle keep-alive."""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    last_used: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        return (not self.reader.at_eof() and not self.writer.is_closing()
                and time.monotonic() - self.last_used < IDLE_S)

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    def __init__(self, pool: UpstreamPool, conn: _Conn, status: int, headers: list[tuple[bytes, bytes]],
                 method: str) -> None:
        self.pool, self.conn, self.status, self.headers = pool, conn, status, headers
        values = {k: v for k, v in headers}
        self._length = int(values[b"content-length"]) if b"content-length" in values else None
        self._chunked = b"chunked" in values.get(b"transfer-encoding", b"").lower()
        # After a 5xx the webserver may close the connection without saying so (uvicorn does after an
        # unhandled exception): reusing it made the next request fail with 502. Never pool it.
        self._keep = values.get(b"connection", b"").lower() != b"close" and status < 500
        self._empty = method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200
        self._done = False

    async def iter_body(self) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        if self._empty:
            pass
        elif self._chunked:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, ignored
                        pass
                    break
                yield await reader.readexactly(size)
                await reader.readexactly(2)
        elif self._length is not None:
            remaining = self._length
            while remaining:
                chunk = await reader.read(min(remaining, 65536))
                if not chunk:
                    raise UpstreamError("webserver closed the connection mid-body")
                remaining -= len(chunk)
                yield chunk
        else:
            self._keep = False
            while chunk := await reader.read(65536):
                yield chunk
        self._done = True

    def release(self) -> None:
        """Back to the pool only if the body was read to its end and the server keeps the connection."""
        if self._done and self._keep:
            self.conn.last_used = time.monotonic()
            self.pool.idle.append(self.conn)
        else:
            self.conn.close()


class UpstreamPool:
    def __init__(self, base_url: str, max_idle: int = 64) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"upstream {base_url!r}: the fast path speaks plain http to a local webserver")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.max_idle = max_idle
        self.idle: list[_Conn] = []

    async def _connect(self, reuse: bool = True) -> tuple[_Conn, bool]:
        """A connection and whether it was reused from the idle pool."""
        while reuse and self.idle:
            conn = self.idle.pop()
            if conn.usable():
                return conn, True
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        except (TimeoutError, OSError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}") from exc
        return _Conn(reader, writer), False

    async def request(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                      body: bytes | None, idempotent: bool | None = None) -> UpstreamResponse:
        """Send one request. A reused keep-alive connection the server has closed under us fails before any
        response byte; such a request is sent again on a fresh connection when it is safe to repeat
        (`idempotent`, default: GET/HEAD; the app marks GraphQL reads idempotent, never mutations)."""
        lines = [f"{method} {target} HTTP/1.1".encode(), b"host: " + f"{self.host}:{self.port}".encode()]
        lines += [k + b": " + v for k, v in headers]
        if body is not None or method not in ("GET", "HEAD"):
            lines.append(b"content-length: " + str(len(body or b"")).encode())
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        safe = method in ("GET", "HEAD") if idempotent is None else idempotent
        conn, reused = await self._connect()
        if reused and safe:
            try:
                return await self._exchange(conn, method, target, head, body)
            except _StaleConnection:
                conn, _ = await self._connect(reuse=False)
        return await self._exchange(conn, method, target, head, body)

    async def _exchange(self, conn: _Conn, method: str, target: str, head: bytes,
                        body: bytes | None) -> UpstreamResponse:
        try:
            conn.writer.write(head + (body or b""))
            await conn.writer.drain()
            try:
                status_line = await conn.reader.readuntil(b"\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise
                conn.close()
                raise _StaleConnection(f"{method} {target}: closed before any response byte") from exc
            while True:
                parts = status_line.split(b" ", 2)
                if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                    raise UpstreamError("webserver answered something that is not HTTP/1.x")
                raw = await conn.reader.readuntil(b"\r\n\r\n")
                if len(raw) > MAX_HEAD:
                    raise UpstreamError("response head too large")
                status = int(parts[1])
                if status != 100:
                    break
                status_line = await conn.reader.readuntil(b"\r\n")
        except _StaleConnection:
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise UpstreamError(f"{method} {target}: {type(exc).__name__}") from exc
        except BaseException:
            conn.close()
            raise
        headers_out = []
        for line in raw[:-4].split(b"\r\n"):
            if line:
                name, _, value = line.partition(b":")
                headers_out.append((name.strip().lower(), value.strip()))
        return UpstreamResponse(self, conn, status, headers_out, method)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
