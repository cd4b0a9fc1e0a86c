"""A real HTTP API for connector tests: Starlette under uvicorn on 127.0.0.1, one route per pagination
style, auth style and failure mode. Counters let tests assert what the client actually did."""

from __future__ import annotations

import asyncio
import base64
import collections
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

API_KEY = "k-123secret"
BEARER = "b-456secret"
BASIC = ("alice", "p-789secret")
CLIENT = ("client-1", "cs-000secret")


def make_item(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"item {i}", "price": round(i * 1.5, 2), "active": i % 2 == 0,
            "updated_at": f"2024-01-{i:02d}T00:00:00"}


@dataclass
class ApiState:
    items: list[dict[str, Any]] = field(default_factory=lambda: [make_item(i) for i in range(1, 26)])
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    tokens: dict[str, float] = field(default_factory=dict)  # OAuth2 token -> expiry (monotonic)
    token_ttl: float = 3600.0
    max_page_size: int = 1000  # the page-number route caps per_page here, as many APIs do
    seen: list[dict[str, str]] = field(default_factory=list)  # query params of each request, in order
    times: collections.defaultdict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))

    def reset(self) -> None:
        self.items = [make_item(i) for i in range(1, 26)]
        self.hits.clear()
        self.tokens.clear()
        self.token_ttl = 3600.0
        self.max_page_size = 1000
        self.seen.clear()
        self.times.clear()


def build_app(state: ApiState) -> Starlette:
    def count(request: Request) -> None:
        state.hits[request.url.path] += 1
        state.seen.append(dict(request.query_params))

    def qint(request: Request, name: str, default: int) -> int:
        return int(request.query_params.get(name, default))

    async def page_number(request: Request) -> Response:
        count(request)
        page, size = qint(request, "page", 1), min(qint(request, "per_page", 10), state.max_page_size)
        rows = state.items[(page - 1) * size: page * size]
        return JSONResponse({"data": rows, "total_pages": -(-len(state.items) // size), "total": len(state.items)})

    async def offset(request: Request) -> Response:
        count(request)
        start, limit = qint(request, "offset", 0), qint(request, "limit", 10)
        return JSONResponse({"items": state.items[start:start + limit], "total": len(state.items)})

    async def cursor(request: Request) -> Response:
        count(request)
        start = int(request.query_params.get("cursor") or 0)
        rows = state.items[start:start + 10]
        following = start + 10 if start + 10 < len(state.items) else None
        return JSONResponse({"data": rows, "meta": {"next_cursor": str(following) if following else None}})

    async def next_url(request: Request) -> Response:
        count(request)
        page = qint(request, "page", 1)
        rows = state.items[(page - 1) * 10: page * 10]
        nxt = str(request.url.include_query_params(page=page + 1)) if page * 10 < len(state.items) else None
        return JSONResponse({"results": rows, "links": {"next": nxt}})

    async def link_header(request: Request) -> Response:
        count(request)
        page = qint(request, "page", 1)
        rows = state.items[(page - 1) * 10: page * 10]
        headers = {}
        if page * 10 < len(state.items):
            headers["Link"] = f'<{request.url.include_query_params(page=page + 1)}>; rel="next"'
        return JSONResponse(rows, headers=headers)

    async def has_more(request: Request) -> Response:
        count(request)
        page = qint(request, "page", 1)
        rows = state.items[(page - 1) * 10: page * 10]
        return JSONResponse({"data": rows, "has_more": page * 10 < len(state.items)})

    async def incremental(request: Request) -> Response:
        count(request)
        since = request.query_params.get("since", "")
        start, end = request.query_params.get("start", ""), request.query_params.get("end", "~")
        rows = [r for r in state.items if r["updated_at"] > since and start <= r["updated_at"] < end]
        page, size = qint(request, "page", 1), 10
        return JSONResponse({"data": rows[(page - 1) * size: page * size]})

    async def users(request: Request) -> Response:
        count(request)
        return JSONResponse({"users": [{"id": u, "name": f"user {u}"} for u in (1, 2, 3)]})

    async def orders(request: Request) -> Response:
        count(request)
        user = int(request.path_params["user"])
        return JSONResponse([{"order": user * 100 + n, "amount": n * 2.5} for n in range(user)])

    def authorized(request: Request) -> bool:
        kind = request.path_params["kind"]
        header = request.headers.get("authorization", "")
        if kind == "api_key_header":
            return request.headers.get("x-api-key") == API_KEY
        if kind == "api_key_query":
            return request.query_params.get("api_key") == API_KEY
        if kind == "bearer":
            return header == f"Bearer {BEARER}"
        if kind == "basic":
            return header == "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
        if kind == "oauth2":
            token = header.removeprefix("Bearer ")
            return state.tokens.get(token, 0) > time.monotonic()
        return False

    async def protected(request: Request) -> Response:
        count(request)
        if not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"data": state.items[:5]})

    async def token(request: Request) -> Response:
        count(request)
        form = await request.form()
        header = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(":".join(CLIENT).encode()).decode()
        if header != expected or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = f"t-{len(state.tokens) + 1}"
        state.tokens[issued] = time.monotonic() + state.token_ttl
        return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": state.token_ttl})

    async def rate_limited(request: Request) -> Response:
        count(request)
        if state.hits[request.url.path] == 1:
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "1"})
        return JSONResponse({"data": state.items[:3]})

    async def slow_pages(request: Request) -> Response:
        # Page-number pages of 10 that take a while: a load that is still running when a test kills it.
        count(request)
        await asyncio.sleep(float(request.query_params.get("delay", "0.2")))
        page = qint(request, "page", 1)
        first, last = (page - 1) * 10 + 1, min(page * 10, 500)
        return JSONResponse({"data": [{"id": i, "value": i * 2} for i in range(first, last + 1)]})

    async def unavailable(request: Request) -> Response:
        count(request)
        state.times[request.url.path].append(time.monotonic())
        if state.hits[request.url.path] == 1:
            return PlainTextResponse("maintenance", status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"data": state.items[:3]})

    async def throttled(request: Request) -> Response:
        # 429 when the previous request came less than 150 ms ago: an API with a rate it does not publish.
        count(request)
        now, times = time.monotonic(), state.times[request.url.path]
        too_soon = bool(times) and now - times[-1] < 0.15
        times.append(now)
        if too_soon:
            state.hits["429"] += 1
            return PlainTextResponse("slow down", status_code=429)
        page = qint(request, "page", 1)
        return JSONResponse({"data": state.items[(page - 1) * 2: page * 2]})

    async def flaky(request: Request) -> Response:
        count(request)
        failures = int(request.path_params["failures"])
        if state.hits[request.url.path] <= failures:
            return PlainTextResponse("boom", status_code=500)
        return JSONResponse({"data": state.items[:3]})

    async def slow(request: Request) -> Response:
        count(request)
        await asyncio.sleep(float(request.query_params.get("seconds", "2")))
        return JSONResponse({"data": []})

    async def malformed(request: Request) -> Response:
        count(request)
        return Response('{"data": [{"id": 1}, ', media_type="application/json")

    async def not_found(request: Request) -> Response:
        count(request)
        return JSONResponse({"error": "no such thing"}, status_code=404)

    async def elsewhere(request: Request) -> Response:
        count(request)
        return JSONResponse({"results": [{"id": 1}], "links": {"next": "http://192.0.2.1/steal"}})

    async def echo(request: Request) -> Response:
        count(request)
        body = await request.json() if request.method == "POST" else None
        return JSONResponse({"data": [{"query": dict(request.query_params), "body": body,
                                       "header": request.headers.get("x-since")}]})

    return Starlette(routes=[
        Route("/items/page_number", page_number),
        Route("/items/offset", offset),
        Route("/items/cursor", cursor),
        Route("/items/next_url", next_url),
        Route("/items/link_header", link_header),
        Route("/items/has_more", has_more),
        Route("/incremental", incremental),
        Route("/users", users),
        Route("/users/{user}/orders", orders),
        Route("/auth/{kind}", protected),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/rate_limited", rate_limited),
        Route("/flaky/{failures}", flaky),
        Route("/unavailable", unavailable),
        Route("/slow_pages", slow_pages),
        Route("/throttled", throttled),
        Route("/slow", slow),
        Route("/malformed", malformed),
        Route("/missing", not_found),
        Route("/elsewhere", elsewhere),
        Route("/echo", echo, methods=["GET", "POST"]),
    ])


@dataclass
class LocalApi:
    url: str
    state: ApiState


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread on a free port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test API did not start within 10s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@contextmanager
def running_api() -> Iterator[LocalApi]:
    state = ApiState()
    with serve(build_app(state)) as url:
        yield LocalApi(url=url, state=state)
