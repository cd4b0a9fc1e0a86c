"""Browser-style sessions (login, CSRF, logout, rate limits) and the WebSocket relay, against the real stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.audit import AuditQuery
from aggregator.proxy.transport import ws as ws_transport
from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy, bearer
from aggregator_tests.proxy.gql import JOB_SELECTOR, LAUNCH, RUN_LOGS, SCHEDULE_SELECTOR, START_SCHEDULE, gql

pytestmark = pytest.mark.slow


@contextmanager
def login(proxy: RunningProxy, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=60, headers={"origin": proxy.url}) as client:
        resp = client.post("/_auth/login", data={"username": username, "password": password, "next": "/runs"})
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == "/runs"
        cookie = resp.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        yield client


def test_login_page_then_session_reads(proxy: RunningProxy) -> None:
    assert "password" in httpx.get(f"{proxy.url}/_auth/login").text
    with login(proxy, "viewer") as client:
        assert gql(client, "", "{ version }").json()["data"]["version"] == dagster.__version__
        me = client.get("/_auth/me").json()
        assert {k: me[k] for k in ("user", "role", "via", "scope")} == {
            "user": "viewer", "role": "viewer", "via": "session", "scope": None}


def test_wrong_password_is_401_and_audited(proxy: RunningProxy) -> None:
    resp = httpx.post(f"{proxy.url}/_auth/login", data={"username": "editor", "password": "wrong password!"},
                      headers={"origin": proxy.url})
    assert resp.status_code == 401
    assert any(r.event == "login" and r.decision == "deny" for r in proxy.audit.query(AuditQuery(username="editor")))


def test_login_is_rate_limited_per_user(proxy: RunningProxy) -> None:
    proxy.store.add_user("guessme", PASSWORD, Role.viewer)
    codes = [httpx.post(f"{proxy.url}/_auth/login", data={"username": "guessme", "password": f"guess {i} xxxxxx"},
                        headers={"origin": proxy.url}).status_code for i in range(6)]
    assert codes == [401] * 5 + [429]
    # Even the right password is refused while the user is locked out.
    right = httpx.post(f"{proxy.url}/_auth/login", data={"username": "guessme", "password": PASSWORD},
                       headers={"origin": proxy.url})
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


def test_logout_really_ends_the_session(proxy: RunningProxy) -> None:
    with login(proxy, "viewer") as client:
        cookie = dict(client.cookies)
        assert client.post("/_auth/logout").status_code == 303
        # Replaying the old cookie after logout must not work: the session is ended server-side.
        replay = httpx.post(f"{proxy.url}/graphql", json={"query": "{ version }"}, cookies=cookie)
        assert replay.status_code == 401


def test_favicon_is_public_and_not_audited(proxy: RunningProxy) -> None:
    """Newcomer review 11: the sign-in page's `/favicon.ico` answered 401 and wrote an audit `deny` row on every
    page load. It is the proxy's own icon now, for anyone, with no audit row."""
    before = len(proxy.audit.query(AuditQuery(decision="deny", limit=10_000)))
    for path in ("/favicon.ico", "/favicon.svg"):
        resp = httpx.get(f"{proxy.url}{path}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("image/svg+xml"), resp
        assert resp.content.startswith(b"<svg")
    assert 'rel="icon"' in httpx.get(f"{proxy.url}/_auth/login").text
    assert len(proxy.audit.query(AuditQuery(decision="deny", limit=10_000))) == before


def test_account_page_names_the_user_and_signs_out(proxy: RunningProxy) -> None:
    """Newcomer review 11: the Dagster UI shows no signed-in user and no sign-out; `/_auth/logout` opened in
    the browser is the documented place for both."""
    assert "not signed in" in httpx.get(f"{proxy.url}/_auth/logout").text
    proxy.store.add_user("ana-account", PASSWORD, Role.launcher, ["sales"])
    with login(proxy, "ana-account") as client:
        page = client.get("/_auth/logout")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        for shown in ("ana-account", "launcher", "sales", 'action="/_auth/logout"', "Sign out"):
            assert shown in page.text, (shown, page.text)
        assert client.post("/_auth/logout").status_code == 303
        assert "not signed in" in client.get("/_auth/logout").text


def test_cookie_writes_need_same_origin(proxy: RunningProxy) -> None:
    with login(proxy, "editor") as client:
        variables = {"s": SCHEDULE_SELECTOR}
        cross = client.post("/graphql", json={"query": START_SCHEDULE, "variables": variables},
                            headers={"origin": "https://evil.example"})
        assert cross.status_code == 403 and cross.json()["missing_permission"] == "same-origin"
        no_origin = httpx.post(f"{proxy.url}/graphql", json={"query": START_SCHEDULE, "variables": variables},
                               cookies=dict(client.cookies))
        assert no_origin.status_code == 403
        # A "simple" form post (no CORS preflight) cannot carry a mutation even from the same origin.
        form = client.post("/graphql", params={"query": START_SCHEDULE, "variables": json.dumps(variables)},
                           content=b"", headers={"content-type": "application/x-www-form-urlencoded"})
        assert form.status_code == 403 and form.json()["missing_permission"] == "POST-json"


def _ws_url(proxy: RunningProxy) -> str:
    return proxy.url.replace("http://", "ws://") + "/graphql"


def _subscribe(ws: Any, run_id: str) -> dict[str, Any]:
    ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(ws.recv(timeout=30))["type"] == "connection_ack"
    ws.send(json.dumps({"type": "start", "id": "1", "payload": {"query": RUN_LOGS, "variables": {"runId": run_id}}}))
    while True:
        message = json.loads(ws.recv(timeout=60))
        if message["type"] != "ka":
            return dict(message)


@pytest.fixture(scope="module")
def run_id(proxy: RunningProxy) -> str:
    with httpx.Client(timeout=60) as c:
        body = gql(c, proxy.url, LAUNCH, {"p": {"selector": JOB_SELECTOR}}, bearer(proxy.tokens["launcher"])).json()
    return str(body["data"]["launchRun"]["run"]["runId"])


def test_run_logs_subscription_through_the_proxy(proxy: RunningProxy, run_id: str) -> None:
    with login(proxy, "viewer") as client:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    with connect(_ws_url(proxy), subprotocols=["graphql-ws"],  # type: ignore[list-item]
                 additional_headers={"cookie": cookie, "origin": proxy.url}) as ws:
        assert ws.subprotocol == "graphql-ws"
        message = _subscribe(ws, run_id)
    assert message["type"] == "data", message
    logs = message["payload"]["data"]["pipelineRunLogs"]
    assert logs["__typename"] == "PipelineRunLogsSubscriptionSuccess"
    assert logs["messages"], "no events for the run"


def test_run_logs_subscription_with_a_token(proxy: RunningProxy, run_id: str) -> None:
    with connect(_ws_url(proxy), subprotocols=["graphql-ws"],  # type: ignore[list-item]
                 additional_headers=bearer(proxy.tokens["viewer"])) as ws:
        assert _subscribe(ws, run_id)["type"] == "data"


def test_websocket_refused_without_auth_or_from_another_site(proxy: RunningProxy) -> None:
    with pytest.raises(InvalidStatus) as no_auth:
        connect(_ws_url(proxy), subprotocols=["graphql-ws"])  # type: ignore[list-item]
    assert no_auth.value.response.status_code == 401
    with login(proxy, "viewer") as client:
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    with pytest.raises(InvalidStatus) as cross:
        connect(_ws_url(proxy), subprotocols=["graphql-ws"],  # type: ignore[list-item]
                additional_headers={"cookie": cookie, "origin": "https://evil.example"})
    assert cross.value.response.status_code == 403


def test_mutation_over_websocket_is_refused(proxy: RunningProxy) -> None:
    with connect(_ws_url(proxy), subprotocols=["graphql-ws"],  # type: ignore[list-item]
                 additional_headers=bearer(proxy.tokens["admin"])) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "connection_ack"
        ws.send(json.dumps({"type": "start", "id": "9", "payload": {
            "query": START_SCHEDULE, "variables": {"s": SCHEDULE_SELECTOR}}}))
        reply = json.loads(ws.recv(timeout=30))
    assert reply["type"] == "error" and "forbidden" in reply["payload"][0]["message"]


@pytest.mark.parametrize("change", ["revoke", "narrow"])
def test_an_open_subscription_ends_when_its_credentials_do(proxy: RunningProxy, run_id: str, change: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Only each new operation was checked, so a subscription kept streaming a run's logs after its token was
    revoked or its owner's grant changed; now the connection is closed (4403) at the next check."""
    monkeypatch.setattr(ws_transport, "RECHECK_S", 0.3)
    user = f"ws_{change}"
    proxy.store.add_user(user, PASSWORD, Role.viewer)
    secret, token = proxy.store.create_token(user)
    with connect(_ws_url(proxy), subprotocols=["graphql-ws"],  # type: ignore[list-item]
                 additional_headers=bearer(secret)) as ws:
        assert _subscribe(ws, run_id)["type"] == "data"
        if change == "revoke":
            proxy.store.revoke_token(token.id)
        else:
            proxy.store.set_role(user, Role.viewer, ["some_other_pipeline"])
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=60)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    rows = proxy.audit.query(AuditQuery(username=user, decision="deny", limit=20))
    assert any(row.reason == "credentials ended or grant changed" for row in rows)
