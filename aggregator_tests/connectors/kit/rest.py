"""The REST connector's kit source: a bearer-protected JSON API on loopback, paged by cursor, incremental by id.

`/hostile/...` answers every request with a 500, and `/garbled/...` with a 200 that is not JSON, each body
echoing the request's Authorization header as misbehaving APIs and proxies do: the connector must not carry
it into an error."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator_tests.connectors.kit import KitSource, kit_row
from aggregator_tests.testapi import serve

PAGE = 500


def _app(rows: list[dict[str, Any]], token: str) -> Starlette:
    async def page(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        after = max(int(request.query_params.get("since") or 0), int(request.query_params.get("after") or 0))
        # Ids are 1..n in order: the page starts right after `after`.
        chunk = rows[after: after + PAGE]
        more = after + PAGE < len(rows)
        return JSONResponse({"data": chunk, "next_cursor": chunk[-1]["id"] if more and chunk else None})

    async def hostile(request: Request) -> Response:
        return PlainTextResponse(f"upstream said no to {request.headers.get('authorization')}", status_code=500)

    async def garbled(request: Request) -> Response:
        return PlainTextResponse(f"<html>{request.headers.get('authorization')}</html>")

    return Starlette(routes=[Route("/rows", page), Route("/hostile/{rest:path}", hostile),
                             Route("/garbled/{rest:path}", garbled)])


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    token = f"tok-{secrets.token_hex(16)}"
    data = [kit_row(i) for i in range(1, rows + 1)]

    def add_rows(ids: range) -> None:
        data.extend(kit_row(i) for i in ids)

    with serve(_app(data, token)) as url:
        auth = {"type": "bearer", "token": {"env": "KIT_REST_TOKEN"}}
        stream: dict[str, Any] = {
            "type": "rest", "path": "rows", "records_path": "data", "batch_size": PAGE,
            "pagination": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "after"},
        }
        yield KitSource(
            config={"base_url": url, "auth": auth, "check_path": "rows", "max_attempts": 1},
            stream=stream,
            incremental_stream={**stream, "params": {"since": "{cursor}"},
                                "incremental": {"cursor_path": "id", "initial_value": 0}},
            add_rows=add_rows,
            environ={"KIT_REST_TOKEN": token},
            secrets=[token],
            failing=[{"base_url": f"{url}/hostile", "auth": auth, "check_path": "rows", "max_attempts": 1},
                     {"base_url": f"{url}/garbled", "auth": auth, "check_path": "rows", "max_attempts": 1},
                     {"base_url": "http://127.0.0.1:1", "auth": auth, "max_attempts": 1}],
        )
