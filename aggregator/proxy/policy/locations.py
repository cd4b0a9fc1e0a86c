"""Is a code location up? Asked of the webserver, so a caller hears "down" rather than "no pipeline".

When the code server has died (or is still loading), the webserver lists no jobs for its location: a trigger
then used to answer `404 no pipeline 'x'`, which sends an operator looking for a typo instead of at the
platform. This module reads the webserver's own location status (`workspaceOrError.locationEntries`) and
reduces it to a reason a client may see. Dagster's error text stays in Dagster: it can hold private gRPC
addresses and file paths; the reason names the location and the kind of failure only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

LOCATION_STATUS = """query AggregatorLocationStatus { workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
RETRY_AFTER_S = 10
_UNREACHABLE = ("DagsterUserCodeUnreachableError", "Could not reach user code server")


@dataclass(frozen=True)
class LocationDown:
    name: str
    reason: str

    def describe(self) -> str:
        return f"code location {self.name!r} is down: {self.reason}"


def down_locations(data: dict[str, Any]) -> list[LocationDown]:
    """The locations of a `LOCATION_STATUS` answer that cannot serve jobs now, with a client-safe reason."""
    workspace = data.get("workspaceOrError") or {}
    down: list[LocationDown] = []
    for entry in workspace.get("locationEntries") or []:
        name = str(entry.get("name"))
        loaded = entry.get("locationOrLoadError") or {}
        if entry.get("loadStatus") == "LOADING":
            down.append(LocationDown(name, "it is loading (starting or restarting); retry shortly"))
        elif loaded.get("__typename") == "PythonError":
            message = str(loaded.get("message") or "")
            if any(marker in message for marker in _UNREACHABLE):
                down.append(LocationDown(name, "its code server is not reachable (restarting or stopped); "
                                               "retry shortly"))
            else:
                down.append(LocationDown(name, "its code failed to load; the error is shown on the code "
                                               "location in the UI"))
    return down


async def unavailable_locations(client: httpx.AsyncClient, graphql_url: str) -> list[LocationDown]:
    """Down locations as the webserver sees them; empty when all are up or the webserver cannot say."""
    try:
        response = await client.post(graphql_url, json={"query": LOCATION_STATUS}, timeout=30)
        data = response.json().get("data") or {}
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    return down_locations(data)


def describe_down(down: list[LocationDown], pipeline: str) -> str:
    """The 503 text of a trigger whose job no location lists: which locations are down, and why."""
    reasons = "; ".join(d.describe() for d in down)
    return f"cannot launch pipeline {pipeline!r} now: {reasons}"
