"""A real dagster-webserver behind the real proxy: authentication, authorization and forwarding end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import dagster
import httpx
import pytest

from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy.conftest import RunningProxy, Upstream, bearer
from aggregator_tests.proxy.gql import (
    JOB_SELECTOR,
    LAUNCH,
    MUTATION_CLASSES,
    RESET_SCHEDULE,
    RUN,
    SCHEDULE_SELECTOR,
    START_SCHEDULE,
    STOP_SCHEDULE,
    ensure_schedule_stopped,
    gql,
    schedule_state,
    schedule_status,
    wait_run,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


def test_unauthenticated_api_gets_401_with_www_authenticate(proxy: RunningProxy, client: httpx.Client) -> None:
    resp = gql(client, proxy.url, "{ version }")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.headers["x-request-id"]


def test_unauthenticated_browser_is_sent_to_login(proxy: RunningProxy, client: httpx.Client) -> None:
    resp = client.get(f"{proxy.url}/runs", headers={"accept": "text/html"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/_auth/login?next=/runs"


def test_only_healthz_is_public(proxy: RunningProxy, client: httpx.Client) -> None:
    """Dagster's /server_info (versions: what an attacker matches CVEs against) needs a principal like any UI
    read; load balancers use the proxy's own /healthz, which says nothing about what runs behind it."""
    assert client.get(f"{proxy.url}/server_info").status_code == 401
    info = client.get(f"{proxy.url}/server_info", headers=bearer(proxy.tokens["viewer"]))
    assert info.json()["dagster_version"] == dagster.__version__
    assert client.get(f"{proxy.url}/healthz").json() == {"status": "ok"}


def test_viewer_reads(proxy: RunningProxy, client: httpx.Client) -> None:
    body = gql(client, proxy.url, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }",
               headers=bearer(proxy.tokens["viewer"])).json()
    assert body["data"]["repositoriesOrError"]["nodes"][0]["name"] == "__repository__"


@pytest.mark.parametrize("kind", sorted(MUTATION_CLASSES))
def test_viewer_is_refused_every_mutation_class(proxy: RunningProxy, client: httpx.Client, kind: str) -> None:
    needed, query, variables = MUTATION_CLASSES[kind]
    resp = gql(client, proxy.url, query, variables, bearer(proxy.tokens["viewer"]))
    assert resp.status_code == 403, resp.text
    assert resp.json()["missing_permission"].startswith(f"{needed}:")


@pytest.mark.parametrize("role", ["viewer", "launcher"])
def test_report_asset_route_needs_editor(proxy: RunningProxy, client: httpx.Client, role: str) -> None:
    resp = client.post(f"{proxy.url}/report_asset_materialization/sales/orders", json={},
                       headers=bearer(proxy.tokens[role]))
    assert resp.status_code == 403
    assert resp.json()["missing_permission"] == "editor:report_asset_events"


def test_editor_can_report_an_asset_event(proxy: RunningProxy, client: httpx.Client) -> None:
    resp = client.post(f"{proxy.url}/report_asset_observation/sales/orders", json={},
                       headers=bearer(proxy.tokens["editor"]))
    assert resp.status_code == 200, resp.text


BYPASSES: dict[str, dict[str, Any]] = {
    "get_query_string": {"method": "GET", "params": {"query": START_SCHEDULE, "variables": "VARS"}},
    "post_query_string": {"method": "POST", "params": {"query": START_SCHEDULE, "variables": "VARS"}},
    "application_graphql": {"method": "POST", "content": START_SCHEDULE, "ctype": "application/graphql"},
    "text_plain_json": {"method": "POST", "content": "JSON", "ctype": "text/plain"},
    "misleading_operation_name": {"method": "POST", "json_extra": {"operationName": "Harmless"},
                                      "query": "query Harmless { version } " + START_SCHEDULE},
    "alias": {"method": "POST", "query": START_SCHEDULE.replace("startSchedule(", "version: startSchedule(")},
    "fragment": {"method": "POST", "query": "mutation M($s: ScheduleSelector!) { ...F } fragment F on Mutation "
                     "{ startSchedule(scheduleSelector: $s) { __typename } }"},
    "op_hint": {"method": "POST", "path": "/graphql?op=RepositoriesQuery", "query": START_SCHEDULE},
    # `%71uery` decodes to `query` in Dagster: a check on the raw bytes would have let this GET through.
    "percent_encoded_param": {"method": "GET", "path": "/graphql?%71uery=" + quote(START_SCHEDULE)
                                  + "&variables=" + quote(json.dumps({"s": SCHEDULE_SELECTOR}))},
    "head_query_string": {"method": "HEAD", "params": {"query": START_SCHEDULE, "variables": "VARS"}},
}


@pytest.mark.parametrize("route", sorted(BYPASSES))
def test_no_route_around_the_permission_check(proxy: RunningProxy, client: httpx.Client, route: str) -> None:
    """Mutations arrive via query strings, other content types, odd documents; all are parsed and refused."""
    spec = BYPASSES[route]
    ensure_schedule_stopped(proxy.url, bearer(proxy.tokens["editor"]))
    variables = json.dumps({"s": SCHEDULE_SELECTOR})
    headers = bearer(proxy.tokens["viewer"])
    url = proxy.url + spec.get("path", "/graphql")
    params = {k: (variables if v == "VARS" else v) for k, v in spec.get("params", {}).items()}
    if "ctype" in spec:
        content = spec["content"] if spec["content"] != "JSON" else json.dumps(
            {"query": START_SCHEDULE, "variables": {"s": SCHEDULE_SELECTOR}})
        resp = client.request(spec["method"], url, params=params, content=content,
                              headers={**headers, "content-type": spec["ctype"]})
    elif "query" in spec:
        payload = {"query": spec["query"], "variables": {"s": SCHEDULE_SELECTOR}, **spec.get("json_extra", {})}
        resp = client.request(spec["method"], url, json=payload, headers=headers)
    else:
        resp = client.request(spec["method"], url, params=params or None, headers=headers)
    assert resp.status_code in (400, 403, 405), resp.text
    assert schedule_status(proxy.url, bearer(proxy.tokens["admin"])) == "STOPPED"


def test_launcher_launches_and_the_run_shows_the_user(proxy: RunningProxy, client: httpx.Client) -> None:
    # A forged `user` tag is replaced, not kept.
    params = {"selector": JOB_SELECTOR, "executionMetadata": {"tags": [{"key": "user", "value": "mallory"}]}}
    resp = gql(client, proxy.url, LAUNCH, {"p": params}, bearer(proxy.tokens["launcher"]))
    assert resp.status_code == 200, resp.text
    result = resp.json()["data"]["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    run_id = result["run"]["runId"]
    tags = {t["key"]: t["value"] for t in result["run"]["tags"]}
    assert tags["user"] == "launcher"
    run = wait_run(proxy.url, run_id, bearer(proxy.tokens["viewer"]))
    assert run["status"] == "SUCCESS", run
    records = proxy.audit.query(AuditQuery(username="launcher", operation="launchRun", decision="allow"))
    assert records and records[0].run_id == run_id
    assert records[0].targets == {"jobs": ["sales_job"]}


def test_launcher_cannot_toggle_a_schedule_but_editor_can(proxy: RunningProxy, client: httpx.Client) -> None:
    denied = gql(client, proxy.url, START_SCHEDULE, {"s": SCHEDULE_SELECTOR}, bearer(proxy.tokens["launcher"]))
    assert denied.status_code == 403
    assert denied.json()["missing_permission"] == "editor:startSchedule"
    editor = bearer(proxy.tokens["editor"])
    ensure_schedule_stopped(proxy.url, editor)
    started = gql(client, proxy.url, START_SCHEDULE, {"s": SCHEDULE_SELECTOR}, editor).json()
    assert started["data"]["startSchedule"]["scheduleState"]["status"] == "RUNNING", started
    state = schedule_state(proxy.url, editor)
    assert state["status"] == "RUNNING"
    stopped = gql(client, proxy.url, STOP_SCHEDULE, {"id": state["id"]}, editor).json()
    assert stopped["data"]["stopRunningSchedule"]["scheduleState"]["status"] == "STOPPED", stopped
    reset = gql(client, proxy.url, RESET_SCHEDULE, {"s": SCHEDULE_SELECTOR}, editor).json()
    assert reset["data"]["resetSchedule"]["__typename"] == "ScheduleStateResult", reset
    denials = proxy.audit.query(AuditQuery(username="launcher", decision="deny", operation="startSchedule"))
    assert denials and denials[0].targets == {"schedules": ["sales_schedule"]}


def test_revoked_and_expired_tokens_are_refused(proxy: RunningProxy, client: httpx.Client) -> None:
    revoked, info = proxy.store.create_token("viewer")
    assert gql(client, proxy.url, "{ version }", headers=bearer(revoked)).status_code == 200
    proxy.store.revoke_token(info.id)
    assert gql(client, proxy.url, "{ version }", headers=bearer(revoked)).status_code == 401
    expired, _ = proxy.store.create_token("viewer", expires_in_s=-1)
    assert gql(client, proxy.url, "{ version }", headers=bearer(expired)).status_code == 401
    tampered = proxy.tokens["viewer"][:-4] + "AAAA"
    assert gql(client, proxy.url, "{ version }", headers=bearer(tampered)).status_code == 401


def test_identity_headers_from_clients_do_not_reach_dagster(proxy: RunningProxy, upstream: Upstream,
                                                            client: httpx.Client) -> None:
    resp = client.get(f"{proxy.url}/server_info", headers={"x-aggregator-user": "admin", "x-forwarded-for": "1.2.3.4",
                                                           **bearer(proxy.tokens["viewer"])})
    assert resp.status_code == 200
    from aggregator.proxy.transport.forward import upstream_headers

    scope = {"headers": [(b"x-aggregator-user", b"admin"), (b"x-aggregator-role", b"admin"),
                         (b"authorization", b"Bearer x"), (b"cookie", b"a=b"), (b"host", b"h")], "scheme": "http"}
    sent = dict(upstream_headers(scope, None, "rid", "10.0.0.1"))
    assert b"x-aggregator-user" not in sent and b"authorization" not in sent and b"cookie" not in sent
    assert sent[b"x-forwarded-for"] == b"10.0.0.1"


# gql (used inside DagsterGraphQLClient) warns about its own API; the warning is Dagster's to fix.
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_dagster_graphql_client_triggers_a_run_with_a_token(proxy: RunningProxy) -> None:
    from dagster_graphql import DagsterGraphQLClient

    host, port = proxy.url.removeprefix("http://").split(":")
    client = DagsterGraphQLClient(host, port_number=int(port), headers=bearer(proxy.tokens["launcher"]))
    run_id = client.submit_job_execution("sales_job", repository_location_name="aggregator.definitions",
                                         repository_name="__repository__")
    with httpx.Client(timeout=30) as http:
        run = gql(http, proxy.url, RUN, {"id": run_id}, bearer(proxy.tokens["viewer"])).json()
    assert {t["key"]: t["value"] for t in run["data"]["runOrError"]["tags"]}["user"] == "launcher"
    with pytest.raises(Exception) as info:
        DagsterGraphQLClient(host, port_number=int(port), headers=bearer(proxy.tokens["viewer"])).submit_job_execution(
            "sales_job", repository_location_name="aggregator.definitions", repository_name="__repository__")
    # The proxy's reason is the GraphQL error the client raises from (shown as "the direct cause").
    assert "missing permission: launcher:" in str(info.value.__cause__)
