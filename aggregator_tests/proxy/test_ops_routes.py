"""The proxy's operations routes against the real webserver: trigger (launcher in scope, token, idempotent),
/metrics (parses; counts the requests and auth failures it saw) and /api/logs (viewer, scope-limited)."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.proxy.conftest import RunningProxy, Upstream, bearer, start_proxy
from aggregator_tests.proxy.gql import wait_run


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def scoped(proxy: RunningProxy) -> dict[str, str]:
    """Tokens of the launcher and viewer users narrowed to the `shop` pipeline."""
    return {role: proxy.store.create_token(role, scope=["shop"])[0] for role in ("launcher", "viewer")}


def trigger(client: httpx.Client, proxy: RunningProxy, token: str | None, pipeline: str = "sales",
            key: str | None = None, body: object = None) -> httpx.Response:
    headers = bearer(token) if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"{proxy.url}/api/pipelines/{pipeline}/trigger", headers=headers,
                       json=body if body is not None else None)


def test_trigger_launches_once_per_idempotency_key_with_who_and_request_id(
    proxy: RunningProxy, client: httpx.Client,
) -> None:
    key = f"upstream-batch-{uuid.uuid4().hex[:8]}"
    first = trigger(client, proxy, proxy.tokens["launcher"], key=key)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["replayed"] is False and created["job"] == "sales_job"
    again = trigger(client, proxy, proxy.tokens["launcher"], key=key)
    assert again.status_code == 200 and again.json()["run_id"] == created["run_id"] and again.json()["replayed"]
    run = wait_run(proxy.url, created["run_id"], bearer(proxy.tokens["viewer"]))
    assert run["status"] == "SUCCESS", run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["user"] == "launcher" and tags["aggregator/triggered_by"] == "launcher"
    assert tags["aggregator/request_id"] == created["request_id"] == first.headers["x-request-id"]
    assert tags["aggregator/idempotency_key"] == f"launcher:{key}"
    records = proxy.audit.query(AuditQuery(username="launcher", event="launch", decision="allow"))
    assert {r.run_id for r in records} >= {created["run_id"]}


def test_concurrent_retries_of_one_key_launch_one_run(proxy: RunningProxy) -> None:
    key = f"retry-{uuid.uuid4().hex[:8]}"

    def call() -> httpx.Response:
        with httpx.Client(timeout=60) as c:
            return trigger(c, proxy, proxy.tokens["launcher"], key=key)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: call(), range(4)))
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["run_id"] for r in responses}) == 1
    wait_run(proxy.url, responses[0].json()["run_id"], bearer(proxy.tokens["viewer"]))


def test_one_key_on_two_replicas_launches_one_run(upstream: Upstream, pg_db: PgDatabase) -> None:
    """Issue 19: two proxy replicas on one proxy database, concurrent retries of one key spread over both:
    one run in Dagster, every answer names it. (A per-process lock let each replica launch its own.)"""
    replicas = [start_proxy(upstream.url, pg_db.sqlalchemy_url) for _ in range(2)]
    try:
        replicas[0].store.add_user("ci", "pw-not-used-here", Role.launcher)
        token, _ = replicas[0].store.create_token("ci")
        key = f"replicas-{uuid.uuid4().hex[:8]}"

        def call(i: int) -> httpx.Response:
            with httpx.Client(timeout=120) as c:
                return trigger(c, replicas[i % 2], token, key=key)

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(call, range(6)))
        assert sorted(r.status_code for r in responses) == [200] * 5 + [201], [r.text for r in responses]
        run_ids = {r.json()["run_id"] for r in responses}
        assert len(run_ids) == 1
        # What Dagster did, not only what the proxy said: exactly one run carries the key.
        runs = httpx.post(f"{upstream.url}/graphql", timeout=60, json={
            "query": "query R($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId } } } }",
            "variables": {"f": {"tags": [{"key": "aggregator/idempotency_key", "value": f"ci:{key}"}]}}}).json()
        assert [r["runId"] for r in runs["data"]["runsOrError"]["results"]] == list(run_ids)
        wait_run(replicas[1].url, run_ids.pop(), bearer(token))
    finally:
        for replica in replicas:
            replica.stop()


def test_trigger_refusals(proxy: RunningProxy, client: httpx.Client, scoped: dict[str, str]) -> None:
    assert trigger(client, proxy, None).status_code == 401
    viewer = trigger(client, proxy, proxy.tokens["viewer"])
    assert viewer.status_code == 403 and "launcher:launch" in viewer.text
    outside = trigger(client, proxy, scoped["launcher"], "sales")
    assert outside.status_code == 403 and "launcher:launch on pipelines:sales" in outside.text
    missing = trigger(client, proxy, proxy.tokens["launcher"], "no_such_pipeline")
    assert missing.status_code == 404
    bad = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {}, "partitions": "x"})
    assert bad.status_code == 400 and "allowed keys: run_config, partition" in bad.text
    bad_config = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {"ops": {"nope": {}}}})
    assert bad_config.status_code == 422 and bad_config.json()["error"] == "RunConfigValidationInvalid"
    assert trigger(client, proxy, proxy.tokens["launcher"], key="has space").status_code == 400


def test_metrics_parse_and_count_requests_and_auth_failures(
    proxy: RunningProxy, client: httpx.Client, scoped: dict[str, str],
) -> None:
    assert client.get(f"{proxy.url}/metrics").status_code == 401
    assert client.get(f"{proxy.url}/metrics", headers=bearer(scoped["viewer"])).status_code == 403
    response = client.get(f"{proxy.url}/metrics", headers=bearer(proxy.tokens["viewer"]))
    assert response.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(response.text) for s in f.samples}
    assert samples[("aggregator_proxy_auth_failures_total", (("reason", "unauthenticated"),))] >= 1
    assert samples[("aggregator_proxy_auth_failures_total", (("reason", "forbidden"),))] >= 1
    assert samples[("aggregator_proxy_requests_total",
                    (("method", "GET"), ("route", "/metrics"), ("status", "401")))] >= 1
    # raw paths never become labels
    assert all("/api/pipelines/sales" not in str(labels) for _, labels in samples)


def test_log_search_is_limited_to_the_callers_scope(
    proxy: RunningProxy, upstream: Upstream, client: httpx.Client, scoped: dict[str, str],
) -> None:
    proxy.app.ops.dagster_home = str(upstream.home / "dagster")
    created = trigger(client, proxy, proxy.tokens["launcher"]).json()
    wait_run(proxy.url, created["run_id"], bearer(proxy.tokens["viewer"]))
    url = f"{proxy.url}/api/logs"
    assert client.get(url).status_code == 401
    found = client.get(url, params={"pipeline": "sales", "run_id": created["run_id"], "limit": 500},
                       headers=bearer(proxy.tokens["viewer"]))
    assert found.status_code == 200, found.text
    lines = found.json()["lines"]
    assert lines and {line["run_id"] for line in lines} == {created["run_id"]}
    assert any("RUN_SUCCESS" == line["event_type"] for line in lines)
    # a grant for shop sees nothing of sales: not by pipeline, not without one, not by run id
    assert client.get(url, params={"pipeline": "sales"}, headers=bearer(scoped["viewer"])).status_code == 403
    assert client.get(url, headers=bearer(scoped["viewer"])).status_code == 403
    by_run = client.get(url, params={"pipeline": "shop", "run_id": created["run_id"]},
                        headers=bearer(scoped["viewer"]))
    assert by_run.status_code == 200 and by_run.json()["lines"] == []
    assert client.get(url, params={"level": "LOUD"}, headers=bearer(proxy.tokens["viewer"])).status_code == 400
    assert client.get(url, params={"sql": "1"}, headers=bearer(proxy.tokens["viewer"])).status_code == 400


def test_proxy_log_lines_carry_the_request_id(proxy: RunningProxy, client: httpx.Client) -> None:
    """With the JSON formatter, the decision line of a request carries its X-Request-Id as correlation_id."""
    import io
    import json
    import logging

    from aggregator.logs.json_format import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    decision_log = logging.getLogger("aggregator.proxy.decision")
    decision_log.addHandler(handler)
    level = decision_log.level
    decision_log.setLevel(logging.INFO)
    try:
        response = trigger(client, proxy, proxy.tokens["viewer"])
    finally:
        decision_log.removeHandler(handler)
        decision_log.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("correlation_id") == response.headers["x-request-id"]]
    assert mine and "decision=deny" in mine[0]["message"]
