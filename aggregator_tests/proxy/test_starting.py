"""Issue 20.2: before the webserver answers, the proxy answers "starting" (HTML for a browser, 503 with
Retry-After for API and GraphQL clients) and names what it waits for, never the webserver's private address;
once the webserver answers, requests pass."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from aggregator.proxy.starting import StartingGate
from aggregator_tests.testapi import serve


def _inner() -> Starlette:
    """Stands in for the proxy app: says which path it served."""
    async def echo(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse(f"proxied {request.url.path}")
    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])


@contextmanager
def _webserver_on(sock: socket.socket) -> Iterator[None]:
    """A real HTTP server answering /server_info on an already bound socket (the private port)."""
    async def info(_request):  # type: ignore[no-untyped-def]
        return JSONResponse({"dagster_version": "test"})
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/server_info", info)]), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_starting_page_then_pass_through() -> None:
    private = socket.socket()
    private.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    private.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused as while starting
    port = private.getsockname()[1]
    upstream = f"http://127.0.0.1:{port}"
    with serve(StartingGate(_inner(), upstream)) as url:
        page = requests.get(f"{url}/", headers={"accept": "text/html,application/xhtml+xml"}, timeout=10)
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert "Data Aggregator is starting" in page.text and "code location" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        api = requests.post(f"{url}/graphql", json={"query": "{ version }"}, timeout=10)
        assert api.status_code == 503 and int(api.headers["retry-after"]) > 0
        assert "waiting for the Dagster webserver" in api.json()["errors"][0]["message"]
        # Sign-in is the proxy's own: available while waiting.
        assert requests.get(f"{url}/_auth/login", timeout=10).text == "proxied /_auth/login"
        for response in (page, api):
            assert str(port) not in response.text and upstream not in response.text
        with _webserver_on(private):
            deadline = time.monotonic() + 30
            while (r := requests.post(f"{url}/graphql", timeout=10)).status_code == 503:
                assert time.monotonic() < deadline, "the gate never opened after the webserver answered"
                time.sleep(0.1)
            assert r.text == "proxied /graphql"
        # The webserver is gone again (a crash): "restarting", not a bare 502.
        deadline = time.monotonic() + 30
        while (r := requests.get(f"{url}/x", headers={"accept": "text/html"}, timeout=10)).status_code != 503:
            assert time.monotonic() < deadline, "the gate never noticed the webserver was gone"
            time.sleep(0.1)
        assert "Data Aggregator is restarting" in r.text


def test_dev_keeps_the_starting_page_until_the_code_location_has_loaded() -> None:
    """`aggregator dev` starts the webserver together with the code server (issue 20 start-up), so the webserver
    answers while the location is still unreachable. With `wait_for_location` the gate opens only once the
    location has loaded, as it did when the webserver started after the code server; once open, a code server
    that goes down again does not hide the UI (the API reports the location as down instead)."""
    status = {"error": "DagsterUserCodeUnreachableError: Could not reach user code server. gRPC Error code: UNAVAILABLE"}
    probes = {"server_info": 0, "graphql": 0}  # the gate's looks at the webserver: what the test waits on

    async def info(_request):  # type: ignore[no-untyped-def]
        probes["server_info"] += 1
        return JSONResponse({"dagster_version": "test"})

    async def graphql(_request):  # type: ignore[no-untyped-def]
        probes["graphql"] += 1
        error = ({"__typename": "PythonError", "message": status["error"]} if status["error"]
                 else {"__typename": "RepositoryLocation"})
        return JSONResponse({"data": {"workspaceOrError": {"locationEntries": [
            {"loadStatus": "LOADED", "locationOrLoadError": error}]}}})

    webserver = Starlette(routes=[Route("/server_info", info), Route("/graphql", graphql, methods=["POST"])])
    with serve(webserver) as upstream, serve(StartingGate(_inner(), upstream, wait_for_location=True)) as url:
        # The webserver answers, the location is unreachable: still starting, over several of the gate's probes.
        while probes["graphql"] < 3:
            r = requests.get(f"{url}/x", headers={"accept": "text/html"}, timeout=10)
            assert r.status_code == 503 and "code location" in r.text, r.text
            time.sleep(0.1)
        status["error"] = ""
        deadline = time.monotonic() + 30
        while (r := requests.get(f"{url}/x", timeout=10)).status_code == 503:
            assert time.monotonic() < deadline, "the gate never opened after the location loaded"
            time.sleep(0.1)
        assert r.text == "proxied /x"
        asked_graphql = probes["graphql"]
        # Up once: a location down again is the API's business (503 naming it), not the gate's.
        status["error"] = "DagsterUserCodeUnreachableError: Could not reach user code server"
        asked = probes["server_info"]
        while probes["server_info"] < asked + 2:
            assert requests.get(f"{url}/x", timeout=10).text == "proxied /x"
            time.sleep(0.1)
        assert probes["graphql"] == asked_graphql
