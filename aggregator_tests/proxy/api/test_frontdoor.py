"""The one front door: one authentication and one CSRF rule for every path, against the real proxy and webserver.

Regression for issue 18's "routes marked as reads skip CSRF": a cross-site form POST made an editor's browser
run a connection check. The class test walks the route table: every API route that is not a plain read,
reached with a session cookie from another site, is refused before its handler runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy.api.conftest import ApiStack
from aggregator_tests.proxy.conftest import PASSWORD

EVIL = "https://evil.example"
SAFE = ("GET", "HEAD", "OPTIONS")


@pytest.fixture(scope="module")
def editor_session(api_stack: ApiStack) -> Iterator[httpx.Client]:
    """A browser signed in as the unscoped editor (cookie only, no Authorization header)."""
    with httpx.Client(base_url=api_stack.url, timeout=120) as client:
        signed_in = client.post("/_auth/login", data={"username": "editor", "password": PASSWORD},
                                headers={"Origin": api_stack.url})
        assert signed_in.status_code == 303, signed_in.text
        assert client.cookies.get(api_stack.proxy.settings.cookie_name)
        yield client


def _sample(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "sales", path)


@pytest.mark.parametrize("path", ["/api/query", "/api/pipelines/validate", "/api/connections/shop_db/check"])
def test_cross_site_reads_with_a_cookie_are_refused(api_stack: ApiStack, editor_session: httpx.Client,
                                                    path: str) -> None:
    """The reported case: POSTs that change nothing still spend the victim's grant, so they need our origin."""
    body = {"sql": "SELECT 1"} if path == "/api/query" else {"name": "x", "yaml": "pipelines: []\n"}
    refused = editor_session.post(path, json=body, headers={"Origin": EVIL})
    assert refused.status_code == 403, refused.text
    assert refused.json()["missing_permission"] == "same-origin"
    rows = api_stack.proxy.audit.query(AuditQuery(username="editor", decision="deny", limit=50))
    assert any(r.operation == f"POST {path}" and "CSRF" in (r.reason or "") for r in rows)
    # The same request from our own pages goes on to the route (whatever the route then answers).
    own = editor_session.post(path, json=body, headers={"Origin": api_stack.url})
    assert own.status_code not in (401, 403), own.text


def test_every_non_read_route_needs_the_origin_with_a_cookie(api_stack: ApiStack,
                                                             editor_session: httpx.Client) -> None:
    """Generated from the route table, so a new route cannot opt out of the rule."""
    routes = [r for r in api_stack.proxy.app.api.routes if r.method not in SAFE]
    assert routes
    for route in routes:
        response = editor_session.request(route.method, _sample(route.path), headers={"Origin": EVIL})
        assert response.status_code == 403, (route.method, route.path, response.text)
        assert response.json()["missing_permission"] == "same-origin", (route.method, route.path)
    # Outside /api/ too: GraphQL (a query, not a mutation), a report route, logout.
    for path in ("/graphql", "/report_asset_materialization/sales/orders", "/_auth/logout"):
        response = editor_session.post(path, json={"query": "{ version }"}, headers={"Origin": EVIL})
        assert response.status_code == 403 and "CSRF" in response.text, (path, response.text)


def test_tokens_are_not_subject_to_the_origin_rule(api_stack: ApiStack) -> None:
    """A bearer token is never sent by a browser on its own: a foreign Origin does not matter."""
    with api_stack.client("viewer") as c:
        r = c.post("/api/query", json={"sql": "SELECT 1"}, headers={"Origin": EVIL})
    assert r.status_code not in (401, 403), r.text


def test_cross_site_sign_in_is_refused(api_stack: ApiStack) -> None:
    """Login CSRF: the sign-in form has no principal yet, but it sets the cookie."""
    r = httpx.post(f"{api_stack.url}/_auth/login", data={"username": "editor", "password": PASSWORD},
                   headers={"Origin": EVIL})
    assert r.status_code == 403 and r.json()["missing_permission"] == "same-origin"
    assert "set-cookie" not in r.headers


def test_anonymous_is_401_everywhere_in_one_shape(api_stack: ApiStack) -> None:
    """The one authentication answers for GraphQL, the API, the trigger, logs, metrics and /_auth/me."""
    for method, path in (("POST", "/graphql"), ("GET", "/api/pipelines"), ("POST", "/api/pipelines/sales/trigger"),
                         ("GET", "/api/logs"), ("GET", "/metrics"), ("GET", "/_auth/me"), ("GET", "/runs")):
        r = httpx.request(method, f"{api_stack.url}{path}", json={} if method == "POST" else None)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"] == "unauthenticated" and r.headers["www-authenticate"].startswith("Bearer")


def test_a_bad_token_is_not_rescued_by_a_cookie(api_stack: ApiStack, editor_session: httpx.Client) -> None:
    r = editor_session.get("/api/pipelines", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "token" in r.json()["detail"]


def test_only_the_front_door_authenticates() -> None:
    """`identify` is called by the front door only (long-lived connections ask it again through
    `identify_again` / `still_grants`)."""
    root = Path(__file__).resolve().parents[3] / "aggregator" / "proxy"
    callers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name in ("identify", "same_origin"):
                callers.add((path.relative_to(root).as_posix(), name))
    assert callers == {("identity/frontdoor.py", "identify"), ("identity/frontdoor.py", "same_origin")}, callers
