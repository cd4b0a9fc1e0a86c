"""Grants limited to some pipelines, the audit endpoint, and Dagster's --path-prefix, against the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.conftest import (
    PASSWORD,
    RunningProxy,
    bearer,
    start_proxy,
    start_webserver,
    stop_process,
)
from aggregator_tests.proxy.gql import JOB_SELECTOR, LAUNCH, SCHEDULE_SELECTOR, START_SCHEDULE, gql

pytestmark = pytest.mark.slow


def test_scoped_launcher_only_launches_inside_its_pipelines(proxy: RunningProxy) -> None:
    proxy.store.add_user("finance-launcher", PASSWORD, Role.launcher, ["finance"])
    proxy.store.add_user("sales-launcher", PASSWORD, Role.launcher, ["sales"])
    outside, _ = proxy.store.create_token("finance-launcher")
    inside, _ = proxy.store.create_token("sales-launcher")
    with httpx.Client(timeout=60) as c:
        denied = gql(c, proxy.url, LAUNCH, {"p": {"selector": JOB_SELECTOR}}, bearer(outside))
        assert denied.status_code == 403
        assert denied.json()["missing_permission"] == "launcher:launchRun on jobs:sales_job"
        # Outside its scope the grant is a viewer: reading still works.
        assert gql(c, proxy.url, "{ version }", headers=bearer(outside)).status_code == 200
        allowed = gql(c, proxy.url, LAUNCH, {"p": {"selector": JOB_SELECTOR}}, bearer(inside))
        assert allowed.json()["data"]["launchRun"]["__typename"] == "LaunchRunSuccess", allowed.text
        # Editor-level actions stay out of reach of a scoped launcher.
        sched = gql(c, proxy.url, START_SCHEDULE, {"s": SCHEDULE_SELECTOR}, bearer(inside))
        assert sched.status_code == 403


def test_audit_endpoint_is_admin_only(proxy: RunningProxy) -> None:
    with httpx.Client(timeout=60) as c:
        gql(c, proxy.url, "mutation { reloadWorkspace { __typename } }", headers=bearer(proxy.tokens["viewer"]))
        viewer = c.get(f"{proxy.url}/_auth/api/audit", headers=bearer(proxy.tokens["viewer"]))
        assert viewer.status_code == 403 and viewer.json()["missing_permission"] == "admin:read_audit"
        admin = c.get(f"{proxy.url}/_auth/api/audit", params={"username": "viewer", "decision": "deny",
                                                               "event": "mutation"},
                      headers=bearer(proxy.tokens["admin"]))
    assert admin.status_code == 200 and admin.headers["cache-control"] == "no-store"
    records = admin.json()
    assert records[0]["operation"] == "mutation:reloadWorkspace"
    assert records[0]["request_id"] and records[0]["source_ip"] == "127.0.0.1"


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    up = start_webserver(tmp_path_factory.mktemp("prefixed-home"), path_prefix="/dagster")
    db = Path(tmp_path_factory.mktemp("prefixed-db")) / "proxy.db"
    running = start_proxy(up.url, f"sqlite:///{db}", path_prefix="/dagster")
    running.store.add_user("viewer", PASSWORD, Role.viewer)
    running.tokens["viewer"], _ = running.store.create_token("viewer")
    yield running
    running.stop()
    stop_process(up.proc)


def test_path_prefix_is_served_and_guarded(prefixed: RunningProxy) -> None:
    base = f"{prefixed.url}/dagster"
    with httpx.Client(timeout=60) as c:
        assert gql(c, base, "{ version }", headers=bearer(prefixed.tokens["viewer"])).json()["data"]["version"]
        assert gql(c, base, "{ version }").status_code == 401
        denied = gql(c, base, "mutation { reloadWorkspace { __typename } }", headers=bearer(prefixed.tokens["viewer"]))
        assert denied.status_code == 403
        page = c.get(f"{base}/runs", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/dagster/_auth/login?next=/dagster/runs"
        assert "password" in c.get(f"{base}/_auth/login").text
        index = c.get(f"{base}/", headers={"accept": "text/html", **bearer(prefixed.tokens["viewer"])})
        assert index.status_code == 200 and "/dagster" in index.text
