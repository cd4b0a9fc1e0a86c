"""Reload the Dagster code location after a spec write, so the UI shows the change within seconds."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

LOCATIONS = "query AggregatorApiLocations { workspaceOrError { ... on Workspace { locationEntries { name } } } }"
RELOAD = """mutation AggregatorApiReload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on WorkspaceLocationEntry { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } ... on PythonError { message } } }"""


async def reload_locations(client: httpx.AsyncClient, graphql_url: str, headers: dict[str, str]) -> list[str]:
    """Reload every code location (the platform has one, `aggregator.definitions`); return problems found.

    Sent straight to the webserver as the proxy itself: the caller was authorized for the spec write, and
    reloading is its documented consequence. A failed reload leaves the spec stored (it passed validation)
    and is reported, so the caller knows the UI still shows the previous version."""
    problems: list[str] = []
    try:
        body = (await client.post(graphql_url, json={"query": LOCATIONS}, headers=headers)).json()
        names = [e["name"] for e in body["data"]["workspaceOrError"]["locationEntries"]]
        for name in names:
            result = (await client.post(graphql_url, json={"query": RELOAD, "variables": {"name": name}},
                                        headers=headers, timeout=httpx.Timeout(10.0, read=300.0))).json()
            entry = (result.get("data") or {}).get("reloadRepositoryLocation") or {}
            error = entry.get("message") or (entry.get("locationOrLoadError") or {}).get("message")
            if error or "errors" in result:
                problems.append(f"location {name}: {error or result.get('errors')}")
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        problems.append(f"reload failed: {type(exc).__name__}: {exc}")
    for problem in problems:
        log.warning("code location reload after a spec write: %s", problem)
    return problems
