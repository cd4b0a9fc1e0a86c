"""The access matrix: every route of the proxy x anonymous, viewer, scoped viewer/launcher/editor (sales),
editor, admin, through the real proxy in front of the real webserver, with real users of the real store.

Generated from the route table: the typed routes (`ApiApp.routes`) and the endpoints served outside it
(`ApiApp.documented`: forms, GraphQL, report routes, the forwarded UI). The role each needs comes from that
table; the matrix only says how a grant's scope applies to a route (`RULES`) and gives sample requests. A route
added without a row here fails `test_every_route_has_a_row`, so no endpoint can be added past the matrix.

Outcomes are the access layer's: 401 (who are you?), 403 naming the missing permission, or "passed" (anything
else: the handler's own answer, e.g. 412 for a stale If-Match, which keeps the allowed writes harmless).

Every principal asks twice: with an API token (machine clients) and with a session cookie from our own origin
(the browser, the Console), since the two reach the front door by different paths (bearer vs cookie + CSRF).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.api.conftest import ApiStack
from aggregator_tests.proxy.conftest import PASSWORD

# Who asks: (role, scope). The matrix's own scoped users are created in the real store below.
PRINCIPALS: dict[str, tuple[Role, frozenset[str] | None] | None] = {
    "anonymous": None,
    "viewer": (Role.viewer, None),
    "sales_viewer": (Role.viewer, frozenset({"sales"})),
    "sales_launcher": (Role.launcher, frozenset({"sales"})),
    "sales_editor": (Role.editor, frozenset({"sales"})),
    "editor": (Role.editor, None),
    "admin": (Role.admin, None),
}

# How a grant's scope applies to a route (the role comes from the route table):
#   public    - nobody is refused;
#   grant     - the role is enough, wherever the grant applies (lists are filtered by scope, not refused);
#   pipeline  - the role on the sample's pipeline; a scoped grant is a viewer outside its pipelines;
#   data      - reading the sample pipeline's data: a scoped grant is fenced off other pipelines entirely;
#   unscoped  - the role with an unscoped grant only.
Rule = Literal["public", "grant", "pipeline", "data", "unscoped"]
Outcome = Literal[401, 403, "passed"]

STALE = {"If-Match": '"stale-etag"'}  # allowed writes stop at 412: the matrix changes nothing


@dataclass
class Sample:
    path: str
    rule: Rule
    target: str | None = None  # the pipeline the request is about, for `pipeline` and `data`
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    stream: bool = False  # an answer that never ends (server-sent events): read the status, then hang up


def _spec(name: str) -> str:
    from aggregator.settings import EXAMPLE_PIPELINES_DIR

    return (EXAMPLE_PIPELINES_DIR / f"{name}.yaml").read_text()


def rows() -> dict[tuple[str, str], list[Sample]]:
    both = ("sales", "shop")
    return {
        ("GET", "/api/pipelines"): [Sample("/api/pipelines", "grant")],
        ("POST", "/api/pipelines"): [Sample("/api/pipelines", "pipeline", p, {"name": p, "yaml": _spec(p)})
                                     for p in both],
        ("POST", "/api/pipelines/validate"): [
            Sample("/api/pipelines/validate", "grant", json={"name": "x", "yaml": "pipelines: []\n"})],
        ("GET", "/api/pipelines/{name}"): [Sample(f"/api/pipelines/{p}", "pipeline", p) for p in both],
        ("PUT", "/api/pipelines/{name}"): [Sample(f"/api/pipelines/{p}", "pipeline", p, {"yaml": _spec(p)},
                                                  headers=STALE) for p in both],
        ("DELETE", "/api/pipelines/{name}"): [Sample(f"/api/pipelines/{p}", "pipeline", p, headers=STALE)
                                              for p in both],
        ("GET", "/api/pipelines/{name}/versions"): [Sample(f"/api/pipelines/{p}/versions", "pipeline", p)
                                                    for p in both],
        # No version 1 exists: the handler's 404 comes before its scope check, so only the in-grant sample.
        ("POST", "/api/pipelines/{name}/versions/{version}/rollback"): [
            Sample("/api/pipelines/sales/versions/1/rollback", "pipeline", "sales", headers=STALE)],
        ("POST", "/api/pipelines/{name}/trigger"): [
            # A refused run config: allowed callers get the trigger's own 422, and nothing is launched.
            Sample(f"/api/pipelines/{p}/trigger", "pipeline", p, {"run_config": {"resources": {}}}) for p in both],
        ("GET", "/api/alerts/history"): [Sample("/api/alerts/history", "grant"),
                                         Sample("/api/alerts/history?pipeline=sales", "data", "sales"),
                                         Sample("/api/alerts/history?pipeline=shop", "data", "shop")],
        # The global alert block is shared by every pipeline: reading it is a viewer's, writing it an unscoped
        # editor's (allowed writes stop at 412 on the stale If-Match).
        ("GET", "/api/alerts/config"): [Sample("/api/alerts/config", "grant")],
        ("GET", "/api/alerts/config/versions"): [Sample("/api/alerts/config/versions", "grant")],
        ("PUT", "/api/alerts/config"): [Sample("/api/alerts/config", "unscoped", json={"alerts": {}}, headers=STALE)],
        # A channel test sends with the channel's secrets: the grant that may change the channel. The samples
        # declare no channel, so allowed callers get the worker's 404 and nothing is sent.
        ("POST", "/api/alerts/channels/{name}/test"): [Sample("/api/alerts/channels/matrix/test", "unscoped")],
        ("GET", "/api/logs"): [Sample(f"/api/logs?pipeline={p}", "data", p) for p in both],
        # Live events: every grant may listen (a scoped one hears its pipelines only); naming a pipeline
        # outside the grant is refused like log search.
        ("GET", "/api/events"): [Sample("/api/events", "grant", stream=True),
                                 *(Sample(f"/api/events?topics=runs,logs&pipeline={p}", "data", p, stream=True)
                                   for p in both)],
        ("GET", "/api/tables"): [Sample("/api/tables", "grant")],
        ("POST", "/api/query"): [Sample("/api/query", "data", "sales", {"sql": "SELECT * FROM sales_orders"}),
                                 Sample("/api/query", "data", "shop", {"sql": "SELECT * FROM shop_customers"})],
        # Everyone's own saved queries and dashboards: any role; no id of the matrix's exists (404) and every
        # write body is refused by its model (400), so the matrix changes nothing.
        ("GET", "/api/saved-queries"): [Sample("/api/saved-queries", "grant")],
        ("POST", "/api/saved-queries"): [Sample("/api/saved-queries", "grant", json={"name": ""})],
        ("GET", "/api/saved-queries/{query_id}"): [Sample("/api/saved-queries/0123456789abcdef", "grant")],
        ("PUT", "/api/saved-queries/{query_id}"): [Sample("/api/saved-queries/0123456789abcdef", "grant",
                                                          json={"name": ""})],
        ("DELETE", "/api/saved-queries/{query_id}"): [Sample("/api/saved-queries/0123456789abcdef", "grant")],
        ("GET", "/api/dashboards"): [Sample("/api/dashboards", "grant")],
        ("POST", "/api/dashboards"): [Sample("/api/dashboards", "grant", json={"name": ""})],
        ("GET", "/api/dashboards/{dashboard_id}"): [Sample("/api/dashboards/0123456789abcdef", "grant")],
        ("PUT", "/api/dashboards/{dashboard_id}"): [Sample("/api/dashboards/0123456789abcdef", "grant",
                                                           json={"name": ""})],
        ("DELETE", "/api/dashboards/{dashboard_id}"): [Sample("/api/dashboards/0123456789abcdef", "grant")],
        ("GET", "/api/assets/{pipeline}/{asset}/export"): [
            Sample("/api/assets/sales/orders/export", "data", "sales"),
            Sample("/api/assets/shop/customers/export", "data", "shop")],
        ("GET", "/api/pipelines/{name}/sources/{source}/schema"): [
            Sample("/api/pipelines/sales/sources/orders/schema", "data", "sales"),
            Sample("/api/pipelines/shop/sources/customers/schema", "data", "shop")],
        ("POST", "/api/pipelines/{name}/sources/{source}/preview"): [
            Sample("/api/pipelines/sales/sources/orders/preview", "data", "sales", {"limit": 2}),
            Sample("/api/pipelines/shop/sources/customers/preview", "data", "shop", {"limit": 2})],
        ("POST", "/api/pipelines/{name}/transforms/{transform}/preview"): [
            Sample("/api/pipelines/sales/transforms/daily_sales/preview", "data", "sales", {"limit": 2}),
            Sample("/api/pipelines/shop/transforms/revenue_by_country/preview", "data", "shop", {"limit": 2})],
        ("GET", "/api/connector-types"): [Sample("/api/connector-types", "grant")],
        ("GET", "/api/connections"): [Sample("/api/connections", "grant")],
        ("GET", "/api/connections/{name}"): [Sample("/api/connections/shop_db", "grant")],
        ("POST", "/api/connections"): [Sample("/api/connections", "unscoped", json={
            "name": "shop_db", "type": "files", "config": {"base_dir": "data"}})],
        ("PUT", "/api/connections/{name}"): [Sample("/api/connections/shop_db", "unscoped", json={
            "type": "sql", "config": {"url": "sqlite:///x.db"}}, headers=STALE)],
        ("DELETE", "/api/connections/{name}"): [Sample("/api/connections/shop_db", "unscoped", headers=STALE)],
        # A connection check or discovery is an editor's action on every pipeline that uses the connection.
        ("POST", "/api/connections/{name}/check"): [Sample("/api/connections/shop_db/check", "pipeline", "shop")],
        ("POST", "/api/connections/{name}/discover"): [
            Sample("/api/connections/shop_db/discover", "pipeline", "shop", {})],
        ("GET", "/api/templates"): [Sample("/api/templates", "grant")],
        # No such template: past the router's role check the handler answers 404 for every grant.
        ("POST", "/api/templates/{name}/instantiate"): [
            Sample("/api/templates/no_such_template/instantiate", "grant", json={"params": {}})],
        ("GET", "/api/uploads/{pipeline}/{filename}"): [Sample(f"/api/uploads/{p}/matrix.csv", "pipeline", p)
                                                        for p in both],
        ("PUT", "/api/uploads/{pipeline}/{filename}"): [
            Sample(f"/api/uploads/{p}/matrix.csv", "pipeline", p, content=b"a,b\n1,2\n",
                   headers={"Content-Type": "application/octet-stream"}) for p in both],
        # Nothing staged under this name: past the access checks the handler answers 404.
        ("DELETE", "/api/uploads/{pipeline}/{filename}"): [Sample(f"/api/uploads/{p}/matrix-none.csv", "pipeline", p)
                                                           for p in both],
        ("GET", "/_auth/me"): [Sample("/_auth/me", "grant")],
        ("GET", "/_auth/api/audit"): [Sample("/_auth/api/audit?limit=1", "unscoped")],
        # User and token administration: allowed callers reach the handler's own 409/404 (the name is taken,
        # nobody is called no_such_user, no token has that id), so the matrix changes nothing.
        ("GET", "/_auth/api/users"): [Sample("/_auth/api/users", "unscoped")],
        ("POST", "/_auth/api/users"): [Sample("/_auth/api/users", "unscoped", json={
            "username": "viewer", "role": "viewer", "generate_password": True})],
        ("PUT", "/_auth/api/users/{username}/role"): [
            Sample("/_auth/api/users/no_such_user/role", "unscoped", json={"role": "viewer"})],
        ("PUT", "/_auth/api/users/{username}/disabled"): [
            Sample("/_auth/api/users/no_such_user/disabled", "unscoped", json={"disabled": True})],
        ("POST", "/_auth/api/users/{username}/password"): [
            Sample("/_auth/api/users/no_such_user/password", "unscoped", json={"generate_password": True})],
        ("GET", "/_auth/api/tokens"): [Sample("/_auth/api/tokens", "unscoped")],
        ("POST", "/_auth/api/tokens"): [Sample("/_auth/api/tokens", "unscoped", json={"username": "no_such_user"})],
        ("DELETE", "/_auth/api/tokens/{token_id}"): [Sample("/_auth/api/tokens/0123456789ab", "unscoped")],
        ("GET", "/metrics"): [Sample("/metrics", "unscoped")],
        ("GET", "/healthz"): [Sample("/healthz", "public")],
        ("GET", "/api/openapi.json"): [Sample("/api/openapi.json", "public")],
        # Served outside the typed router (ApiApp.documented).
        ("GET", "/_auth/login"): [Sample("/_auth/login", "public")],
        ("POST", "/_auth/login"): [Sample("/_auth/login", "public", form={"username": "viewer", "password": PASSWORD})],
        ("GET", "/_auth/logout"): [Sample("/_auth/logout", "public")],
        ("POST", "/_auth/logout"): [Sample("/_auth/logout", "public")],
        ("GET", "/favicon.ico"): [Sample("/favicon.ico", "public")],
        ("GET", "/_auth/oidc/login"): [Sample("/_auth/oidc/login", "public")],
        ("GET", "/_auth/oidc/callback"): [Sample("/_auth/oidc/callback", "public")],
        ("POST", "/graphql"): [Sample("/graphql", "grant", json={"query": "{ version }"})],
        ("GET", "/graphql"): [Sample("/graphql", "grant")],
        ("POST", "/report_asset_materialization/{asset_key}"): [
            Sample("/report_asset_materialization/sales/orders", "pipeline", "sales", {}),
            Sample("/report_asset_materialization/shop/customers", "pipeline", "shop", {})],
        ("GET", "/console/{page}"): [Sample("/console/", "grant"), Sample("/console/connections", "grant")],
        ("GET", "/{ui_path}"): [Sample("/runs", "grant"), Sample("/server_info", "grant")],
    }


def expected(needed: Role | None, sample: Sample, who: str) -> Outcome:
    grant = PRINCIPALS[who]
    if sample.rule == "public" or needed is None:
        return "passed"
    if grant is None:
        return 401
    role, scope = grant
    inside = scope is None or sample.target in scope
    if sample.rule == "grant":
        return "passed" if role >= needed else 403
    if sample.rule == "pipeline":
        effective = role if inside else Role.viewer
        return "passed" if effective >= needed else 403
    if sample.rule == "data":
        return "passed" if inside and role >= needed else 403
    return "passed" if scope is None and role >= needed else 403  # unscoped


@pytest.fixture(scope="module")
def tokens(api_stack: ApiStack) -> dict[str, str]:
    """Bearer tokens of every principal; the scoped viewer and launcher are made here, through the store."""
    store = api_stack.proxy.store
    found = {}
    for who, grant in PRINCIPALS.items():
        if grant is None:
            continue
        if who not in api_stack.tokens:
            role, scope = grant
            if store.get_user(who) is None:
                store.add_user(who, PASSWORD, role, scope=sorted(scope) if scope else None)
            api_stack.tokens[who], _ = store.create_token(who)
        found[who] = api_stack.tokens[who]
    return found


def table(api_stack: ApiStack) -> dict[tuple[str, str], Role | None]:
    """The route table as the running proxy has it: (method, path) -> role needed (None = public)."""
    api = api_stack.proxy.app.api
    routes: dict[tuple[str, str], Role | None] = {(r.method, r.path): (None if r.public else r.role)
                                                  for r in api.routes}
    routes.update({(d.method, d.path): d.role for d in api.documented})
    return routes


def test_every_route_has_a_row(api_stack: ApiStack) -> None:
    assert set(table(api_stack)) == set(rows())


@pytest.fixture(scope="module")
def client(api_stack: ApiStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_stack.url, timeout=120, follow_redirects=False) as c:
        yield c


Credential = Literal["token", "session"]
CASES = [(key, i, who, via) for key, samples in rows().items() for i in range(len(samples)) for who in PRINCIPALS
         for via in (("token",) if who == "anonymous" else ("token", "session"))]


def session_cookie(api_stack: ApiStack, who: str) -> str:
    """A fresh browser session of `who`, as the sign-in form makes it (one per request: the matrix's
    `/_auth/logout` row ends the session it is sent with)."""
    store = api_stack.proxy.store
    user = store.get_user(who)
    assert user is not None
    return f"{api_stack.proxy.settings.cookie_name}={store.create_session(user, 3600)}"


@pytest.mark.parametrize(("key", "index", "who", "via"), CASES,
                         ids=[f"{m} {rows()[(m, p)][i].path} {who} {via}" for (m, p), i, who, via in CASES])
def test_access_matrix(api_stack: ApiStack, tokens: dict[str, str], client: httpx.Client,
                       key: tuple[str, str], index: int, who: str, via: Credential) -> None:
    sample = rows()[key][index]
    needed = table(api_stack)[key]
    want = expected(needed, sample, who)
    headers = {"Origin": api_stack.url, **sample.headers}
    if who != "anonymous" and via == "token":
        headers["Authorization"] = f"Bearer {tokens[who]}"
    elif who != "anonymous":
        headers["Cookie"] = session_cookie(api_stack, who)
    client.cookies.clear()
    if sample.stream:
        with client.stream(key[0], sample.path, headers=headers) as streamed:
            if streamed.status_code != 200:
                streamed.read()
            response = streamed
    else:
        response = client.request(key[0], sample.path, headers=headers, json=sample.json, content=sample.content,
                                  data=sample.form)
    got: Outcome = response.status_code if response.status_code in (401, 403) else "passed"  # type: ignore[assignment]
    assert got == want, f"{key[0]} {sample.path} as {who} ({via}): {response.status_code} {response.text[:300]}"
    if got == 403:
        assert response.json().get("missing_permission"), response.text


@pytest.mark.parametrize("who", list(PRINCIPALS))
def test_websocket_upgrade_matrix(api_stack: ApiStack, tokens: dict[str, str], who: str) -> None:
    """The WebSocket relay (GET /graphql upgraded) is behind the same front door: 401 for nobody, a viewer
    grant of any scope may subscribe (each `start` frame is then authorized like a query)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = api_stack.url.replace("http", "ws", 1) + "/graphql"
    headers = {"Origin": api_stack.url}
    if who != "anonymous":
        headers["Authorization"] = f"Bearer {tokens[who]}"
    want = expected(Role.viewer, Sample("/graphql", "grant"), who)
    if want == 401:
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=["graphql-ws"], additional_headers=headers, open_timeout=30)  # type: ignore[list-item]
        assert refused.value.response.status_code == 401
        return
    with connect(url, subprotocols=["graphql-ws"], additional_headers=headers, open_timeout=30) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-ws"
