"""The proxy's operations routes against the real webserver: trigger (launcher in scope, token, idempotent),
/metrics (parses; counts the requests and auth failures it saw) and /api/logs (viewer, scope-limited)."""

from __future__ import annotations

import concurrent.futures
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import yaml
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
    assert viewer.status_code == 403 and viewer.json()["missing_permission"] == "launcher:trigger_pipeline"
    outside = trigger(client, proxy, scoped["launcher"], "sales")
    assert outside.status_code == 403
    assert outside.json()["missing_permission"] == "launcher:trigger_pipeline on sales"
    missing = trigger(client, proxy, proxy.tokens["launcher"], "no_such_pipeline")
    assert missing.status_code == 404
    bad = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {}, "partitions": "x"})
    assert bad.status_code == 400 and "body partitions: Extra inputs are not permitted" in bad.json()["detail"]
    bad_config = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {"ops": {"nope": {}}}})
    assert bad_config.status_code == 422 and bad_config.json()["error"] == "invalid"
    assert "run_config.ops.nope" in bad_config.json()["detail"]
    assert trigger(client, proxy, proxy.tokens["launcher"], key="has space").status_code == 400


JOB_OPS = """query Ops($s: PipelineSelector!) { pipelineOrError(params: $s) { ... on Pipeline {
  solidHandles { handleID } } } }"""
RUN_RECORD = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run { runConfigYaml jobName
  tags { key value } } } }"""
RUN_IDS = """{ runsOrError { ... on Runs { results { runId } } } }"""


def upstream_gql(upstream: Upstream, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
    """Ask Dagster directly (not through the proxy): what it did, not what the proxy said."""
    body = httpx.post(f"{upstream.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    return dict(body.json()["data"])


def run_ids(upstream: Upstream) -> set[str]:
    return {r["runId"] for r in upstream_gql(upstream, RUN_IDS)["runsOrError"]["results"]}  # type: ignore[index]


@pytest.mark.parametrize(("run_config", "key"), [
    ({"resources": {"warehouse": {"config": {"url": "sqlite:////tmp/attacker.db"}}}}, "run_config.resources"),
    ({"resources": {"sales_api": {"config": {"base_url": "http://127.0.0.1:9/"}}}}, "run_config.resources"),
    ({"resources": {"files": {"config": {"base_dir": "/etc"}}}}, "run_config.resources"),
    ({"execution": {"config": {"in_process": {}}}}, "run_config.execution"),
    ({"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}, "run_config.loggers"),
    ({"ops": {"shop__customers": {"config": {}}}}, "run_config.ops.shop__customers"),
    ({"ops": {"{sales_op}": {"inputs": {"x": 1}}}}, "run_config.ops.{sales_op}.inputs"),
])
def test_trigger_refuses_run_config_beyond_its_assets_op_config(
    proxy: RunningProxy, upstream: Upstream, client: httpx.Client, run_config: dict[str, object], key: str,
) -> None:
    """Issue 18, class 6: a launcher's run config chose the warehouse URL and a connection's base URL/dir.
    Refused naming the key, and Dagster launched nothing."""
    sales_op = min(sales_ops(upstream))
    run_config = json.loads(json.dumps(run_config).replace("{sales_op}", sales_op))
    key = key.replace("{sales_op}", sales_op)
    before = run_ids(upstream)
    for who in ("launcher", "admin"):  # no role may: the rule is about the run, not the caller
        refused = trigger(client, proxy, proxy.tokens[who], body={"run_config": run_config})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith(key + ":"), refused.json()
    assert run_ids(upstream) == before


ROOT_FIELDS = """query Schema($s: PipelineSelector!) { runConfigSchemaOrError(selector: $s) {
  ... on RunConfigSchema { rootConfigType { ... on CompositeConfigType { fields { name } } } } } }"""


def test_every_run_config_section_but_ops_is_refused(
    proxy: RunningProxy, upstream: Upstream, client: httpx.Client,
) -> None:
    """Generated from Dagster's own run config schema of the job: every top-level section it accepts other than
    `ops` (resources, execution, loggers, and whatever a later Dagster adds) is refused by the trigger."""
    selector = {"repositoryLocationName": "aggregator.definitions", "repositoryName": "__repository__",
                "pipelineName": "sales_job"}
    schema = upstream_gql(upstream, ROOT_FIELDS, {"s": selector})["runConfigSchemaOrError"]
    sections = {f["name"] for f in schema["rootConfigType"]["fields"]}  # type: ignore[index]
    assert {"ops", "resources", "execution", "loggers"} <= sections, sections
    before = run_ids(upstream)
    for section in sorted(sections - {"ops"}):
        refused = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {section: {}}})
        assert refused.status_code == 422 and refused.json()["detail"].startswith(f"run_config.{section}:"), (
            section, refused.text)
    assert run_ids(upstream) == before


def sales_ops(upstream: Upstream) -> set[str]:
    selector = {"repositoryLocationName": "aggregator.definitions", "repositoryName": "__repository__",
                "pipelineName": "sales_job"}
    data = upstream_gql(upstream, JOB_OPS, {"s": selector})
    return {h["handleID"] for h in data["pipelineOrError"]["solidHandles"]}  # type: ignore[index]


def test_trigger_launches_with_exactly_the_allowed_op_config(
    proxy: RunningProxy, upstream: Upstream, client: httpx.Client,
) -> None:
    """The positive side, checked in Dagster's run record: op config of the pipeline's own asset reaches the run,
    nothing else does, and the tags are the proxy's."""
    op = min(sales_ops(upstream))
    created = trigger(client, proxy, proxy.tokens["launcher"], body={"run_config": {"ops": {op: {"config": {}}}}})
    assert created.status_code == 201, created.text
    record = upstream_gql(upstream, RUN_RECORD, {"id": created.json()["run_id"]})["runOrError"]
    assert yaml.safe_load(record["runConfigYaml"]) == {"ops": {op: {"config": {}}}}  # type: ignore[index]
    tags = {t["key"]: t["value"] for t in record["tags"]}  # type: ignore[index]
    assert tags["user"] == "launcher" and not any(k.startswith("dagster-k8s/") for k in tags)
    wait_run(proxy.url, created.json()["run_id"], bearer(proxy.tokens["viewer"]))


def test_kubernetes_tags_are_named_by_the_shared_launch_tag_rule() -> None:
    """The trigger refuses run tags that configure Kubernetes with launch_tags.kubernetes_tags; the rule
    matches the prefix the K8sRunLauncher reads, and nothing else."""
    from aggregator.proxy.policy.launch_tags import kubernetes_tags

    tags = [{"key": "dagster-k8s/config", "value": "{}"}, {"key": "user", "value": "x"},
            {"key": "dagster/partition", "value": "dagster-k8s/config"}]
    assert kubernetes_tags(tags) == ["dagster-k8s/config"]


def test_graphql_launches_with_kubernetes_tags_are_refused_below_admin(
    proxy: RunningProxy, upstream: Upstream, client: httpx.Client,
) -> None:
    """`dagster-k8s/config` on a run becomes its pod spec under the K8sRunLauncher (host paths, service
    accounts): a launcher may not set it, in variables or inline in the document; nothing is launched."""
    from aggregator_tests.proxy.gql import JOB_SELECTOR, LAUNCH, gql

    before = run_ids(upstream)
    tags = [{"key": "dagster-k8s/config", "value": '{"pod_spec_config": {"volumes": []}}'}]
    params = {"selector": JOB_SELECTOR, "executionMetadata": {"tags": tags}}
    refused = gql(client, proxy.url, LAUNCH, {"p": params}, bearer(proxy.tokens["launcher"]))
    assert refused.status_code == 403, refused.text
    assert refused.json()["missing_permission"] == "admin:kubernetes_tags"
    inline = ('mutation { launchRun(executionParams: {selector: {jobName: "sales_job", repositoryName: '
              '"__repository__", repositoryLocationName: "aggregator.definitions"}, executionMetadata: '
              '{tags: [{key: "dagster-k8s/pod", value: "{}"}]}}) { __typename } }')
    refused = gql(client, proxy.url, inline, None, bearer(proxy.tokens["launcher"]))
    assert refused.status_code == 403 and "dagster-k8s/pod" in refused.json()["detail"], refused.text
    assert run_ids(upstream) == before


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
    proxy.app.ops.dagster_home = None
    assert client.get(f"{proxy.url}/api/logs", headers=bearer(proxy.tokens["viewer"])).status_code == 503
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
