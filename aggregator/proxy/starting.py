"""While the webserver is not answering, the proxy says so instead of failing: a "starting" page for
browsers, 503 with Retry-After for API and GraphQL clients.

`aggregator dev` starts the proxy at once, before the code location has loaded; on a loaded machine the
webserver may take minutes. The page names what it waits for, never the webserver's private address (which
bypasses sign-in). Sign-in (`/_auth/`) is the proxy's own and stays available.

A probe watches the webserver in the background. Only a refused connection (nothing listening: starting or
restarting) marks it down; a slow answer under load does not, so a busy webserver is never hidden behind 503.
With `wait_for_location` (`aggregator dev`, which starts the webserver before the code has loaded) the first
opening also waits until every code location is loaded or failed for good; later, a code server that is down
is reported by the API as down (503 naming it), and the UI stays reachable.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time

import httpx

from aggregator.proxy.refusals import refusal
from aggregator.proxy.transport.asgi import Receive, Scope, Send

log = logging.getLogger(__name__)

PROBE_DOWN_S = 0.5  # how often to look while waiting: the page flips soon after the webserver answers
PROBE_UP_S = 2.0
RETRY_AFTER_S = 5
WAITING_FOR = "the Dagster webserver and the pipelines' code location to load"
# Every location's load status; a PythonError saying the code server is not reachable (yet) is not settled.
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

# The page is static: no script, no frame, nothing loaded from elsewhere.
_PAGE_HEADERS = {"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
                 "x-frame-options": "DENY", "x-content-type-options": "nosniff"}
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="3">
<title>Data Aggregator is {state}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Data Aggregator is {state}</h1>
<p>Waiting for {what} ({elapsed}).</p>
<p>This page reloads by itself. Runs and schedules already started are not affected.</p>
</body></html>"""


class StartingGate:
    """Pure ASGI wrapper in front of the proxy app."""

    def __init__(self, app: object, upstream: str, path_prefix: str = "", wait_for_location: bool = False) -> None:
        self.app = app
        self.probe_url = f"{upstream.rstrip('/')}{path_prefix}/server_info"
        self.graphql_url = f"{upstream.rstrip('/')}{path_prefix}/graphql"
        self.wait_for_location = wait_for_location
        self.prefix = path_prefix
        self.up = False
        self.ever_up = False
        self.since = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)  # type: ignore[operator, no-any-return]
        if self._task is None:
            self._task = asyncio.create_task(self._probe_loop())
        if not self._first.is_set():
            await self._first.wait()
        path = str(scope.get("path", ""))
        if self.up or path.startswith(f"{self.prefix}/_auth/"):
            return await self.app(scope, receive, send)  # type: ignore[operator, no-any-return]
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1013, "reason": "platform starting"})
        return await self._starting(scope, receive, send)

    async def _starting(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.responses import HTMLResponse

        state = "restarting" if self.ever_up else "starting"
        elapsed = f"{time.monotonic() - self.since:.0f} s so far"
        accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
        if scope.get("method") == "GET" and "text/html" in accept:
            page = _PAGE.format(state=state, what=html.escape(WAITING_FOR), elapsed=elapsed)
            response = HTMLResponse(page, status_code=503, headers={
                "retry-after": str(RETRY_AFTER_S), "cache-control": "no-store", **_PAGE_HEADERS})
            return await response(scope, receive, send)
        await refusal(503, f"the platform is {state}: waiting for {WAITING_FOR} ({elapsed}); retry shortly",
                      retry_after=RETRY_AFTER_S)(scope, receive, send)

    async def _probe_loop(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            while True:
                self._set(await self._probe(client))
                self._first.set()
                await asyncio.sleep(PROBE_UP_S if self.up else PROBE_DOWN_S)

    async def _probe(self, client: httpx.AsyncClient) -> bool:
        try:
            if (await client.get(self.probe_url)).status_code != 200:
                return False
            if self.wait_for_location and not self.ever_up:
                return await self._locations_settled(client)
            return True
        except httpx.ConnectError:
            return False
        except httpx.HTTPError:
            # Slow or cut answers come from a busy webserver, which is not down: keep what we knew.
            return self.up

    async def _locations_settled(self, client: httpx.AsyncClient) -> bool:
        from aggregator.dev_location import TRANSIENT

        try:
            entries = (await client.post(self.graphql_url, json={"query": LOCATIONS})).json()[
                "data"]["workspaceOrError"]["locationEntries"]
        except (ValueError, KeyError, TypeError):
            return False
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if entry.get("loadStatus") != "LOADED" or (
                    error.get("__typename") == "PythonError"
                    and any(t in (error.get("message") or "") for t in TRANSIENT)):
                return False
        return True

    def _set(self, up: bool) -> None:
        if up == self.up:
            return
        self.up, self.since = up, time.monotonic()
        if up:
            self.ever_up = True
            log.warning("webserver answers: serving requests")
        elif self.ever_up:
            log.warning("webserver stopped answering: answering 503 until it is back")
