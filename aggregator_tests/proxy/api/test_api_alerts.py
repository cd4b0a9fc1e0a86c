"""Alert channels and rules through the API, and "send test" through the real proxy and the real worker to a
real webhook server and a real SMTP server (aiosmtpd, STARTTLS and login) on 127.0.0.1.

The channels' secrets are set only in the worker's environment: this process, which runs the proxy, never has
them, and the tests still deliver (the proxy names the channel; the worker resolves and sends).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator_tests.alerts.receivers import HttpReceiver, SmtpReceiver, smtp_controller, start_http_receiver
from aggregator_tests.processes import free_port
from aggregator_tests.proxy.api.conftest import (
    GRANTS,
    ApiStack,
    RunningProxy,
    pipelines_env,
    start_api_proxy,
    start_api_worker,
)
from aggregator_tests.proxy.conftest import PASSWORD, stop_process

HOOK_TOKEN = "hook-token-api-71c2"
HOOK_SECRET = "hmac-key-api-0d4e"
SMTP_PASSWORD = "smtp-pass-api-8f19"
SECRETS = (HOOK_TOKEN, HOOK_SECRET, SMTP_PASSWORD)
# Only the worker gets these; the test asserts this process (the proxy's) never has them.
WORKER_SECRETS = ("ALERTS_API_HOOK_URL", "ALERTS_API_HOOK_SECRET", "ALERTS_API_SMTP_PASSWORD")
TESTS_PER_MINUTE = 2  # of the proxy the rate-limit test starts; the module's proxy allows plenty

ALERTS_YAML = """alerts:
  ui_url: http://dagster.example:3000
  delivery: {{attempts: 1, backoff_seconds: 0}}
  channels:
    hook:
      type: webhook
      url: {{env: ALERTS_API_HOOK_URL}}
      secret: {{env: ALERTS_API_HOOK_SECRET}}
    mail:
      type: email
      host: 127.0.0.1
      port: {smtp_port}
      username: alerts
      password: {{env: ALERTS_API_SMTP_PASSWORD}}
      sender: aggregator@example.com
      to: [data-team@example.com]
      ca_file: {ca_file}
    unset:
      type: slack
      url: {{env: ALERTS_API_UNSET_URL}}
  rules:
    - {{when: run_failure, channels: [hook, mail]}}
"""


@dataclass
class AlertStack:
    api: ApiStack
    proxy: RunningProxy
    specs: Path
    receiver: HttpReceiver
    smtp: SmtpReceiver
    tokens: dict[str, str]
    worker: tuple[str, str]

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.proxy.url, timeout=120, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def test(self, who: str, channel: str) -> httpx.Response:
        with self.client(who) as c:
            return c.post(f"/api/alerts/channels/{channel}/test")

    def history(self) -> list[dict[str, Any]]:
        with self.client("viewer") as c:
            response = c.get("/api/alerts/history", params={"limit": 50})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows


@pytest.fixture(scope="module")
def alerts(api_stack: ApiStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertStack]:
    """A proxy and a worker of their own over a copy of the samples plus `alerts.yaml` (the proxy reaches the
    shared webserver); the channels' secrets are in the worker's environment only."""
    for name in WORKER_SECRETS:
        assert name not in os.environ, f"{name} must not be in the proxy's environment for these tests"
    home = tmp_path_factory.mktemp("alerts-api")
    specs = home / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    receiver, thread = start_http_receiver()
    controller, smtp = smtp_controller(home, "alerts", SMTP_PASSWORD)
    smtp.port = controller.port = free_port()
    controller.start()
    (specs / "alerts.yaml").write_text(ALERTS_YAML.format(smtp_port=smtp.port, ca_file=smtp.ca_file))
    platform = Settings(home=home, pipelines_dir=specs, warehouse_url=f"sqlite:///{home / 'warehouse.db'}")
    proxy_db = f"sqlite:///{home / 'proxy.db'}"
    worker = None
    try:
        worker_url, token, worker = start_api_worker(
            home, pipelines_env(home, specs, platform.warehouse_url), [], [proxy_db],
            ALERTS_API_HOOK_URL=f"{receiver.base_url}/hook?token={HOOK_TOKEN}",
            ALERTS_API_HOOK_SECRET=HOOK_SECRET, ALERTS_API_SMTP_PASSWORD=SMTP_PASSWORD)
        with pytest.MonkeyPatch.context() as patch:  # the API reads its limits when it is built
            patch.setenv("AGGREGATOR_API_ALERT_TESTS_PER_MINUTE", "1000")
            proxy = start_api_proxy(api_stack.upstream_url, proxy_db, platform, (worker_url, token))
        try:
            tokens = {}
            for user, (role, scope) in GRANTS.items():
                proxy.store.add_user(user, PASSWORD, role, scope=scope)
                tokens[user], _ = proxy.store.create_token(user)
            yield AlertStack(api_stack, proxy, specs, receiver, smtp, tokens, (worker_url, token))
        finally:
            proxy.stop()
    finally:
        if worker is not None:
            stop_process(worker)
        controller.stop()
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_send_test_webhook_is_delivered_by_the_worker_with_secrets_the_proxy_never_had(alerts: AlertStack) -> None:
    """The proxy process has none of the channel's variables, and the signed test message still arrives."""
    assert not any(name in os.environ for name in WORKER_SECRETS)
    before = len(alerts.receiver.requests)
    response = alerts.test("editor", "hook")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["delivered"] is True and body["attempts"] == 1 and body["error"] is None
    assert body["title"] == "TEST: alert channel hook works"
    got = alerts.receiver.requests[before:]
    assert len(got) == 1 and got[0].path == f"/hook?token={HOOK_TOKEN}"
    payload = got[0].json()
    assert payload["kind"] == "test" and "sent by editor" in payload["summary"]
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), got[0].body, hashlib.sha256).hexdigest()
    assert got[0].headers["x-aggregator-signature"] == expected
    _no_secret(response.text)
    row = alerts.history()[0]
    assert (row["status"], row["kind"], row["channel"], row["title"]) == ("sent", "test", "hook", body["title"])


def test_send_test_email_through_starttls_and_login(alerts: AlertStack) -> None:
    before = len(alerts.smtp.messages)
    response = alerts.test("admin", "mail")
    assert response.status_code == 200, response.text
    assert response.json()["delivered"] is True, response.text
    mail = alerts.smtp.messages[before:]
    assert len(mail) == 1 and mail[0].recipients == ["data-team@example.com"]
    assert "Subject: [test] TEST: alert channel mail works" in mail[0].content
    _no_secret(mail[0].content + response.text)


def test_a_variable_the_worker_lacks_is_named_and_recorded_failed(alerts: AlertStack) -> None:
    response = alerts.test("editor", "unset")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["delivered"] is False and body["attempts"] == 0
    assert "ALERTS_API_UNSET_URL" in body["error"] and "not set" in body["error"]
    row = alerts.history()[0]
    assert (row["status"], row["channel"]) == ("failed", "unset") and "ALERTS_API_UNSET_URL" in row["detail"]


def test_a_refused_delivery_is_answered_sanitized(alerts: AlertStack) -> None:
    alerts.receiver.status = 500
    try:
        response = alerts.test("editor", "hook")
    finally:
        alerts.receiver.status = 200
    body = response.json()
    assert response.status_code == 200 and body["delivered"] is False, response.text
    assert body["error"] == f"POST {alerts.receiver.base_url}/*** answered HTTP 500"
    row = alerts.history()[0]
    assert row["status"] == "failed" and row["detail"] == body["error"]
    _no_secret(response.text + str(row))


def test_unknown_channel_names_the_declared_ones(alerts: AlertStack) -> None:
    response = alerts.test("editor", "pager")
    assert response.status_code == 404, response.text
    assert "no alert channel 'pager'; declared under alerts.channels: hook, mail, unset" in response.json()["detail"]


@pytest.mark.parametrize("who", ["viewer", "launcher", "sales_editor"])
def test_send_test_is_refused_naming_the_permission(alerts: AlertStack, who: str) -> None:
    before = len(alerts.receiver.requests)
    response = alerts.test(who, "hook")
    assert response.status_code == 403, response.text
    missing = response.json()["missing_permission"]
    assert missing.startswith("editor:test_alert_channel"), missing
    assert len(alerts.receiver.requests) == before


def test_send_test_is_audited(alerts: AlertStack) -> None:
    from aggregator.proxy.storage.audit import AuditQuery

    alerts.test("editor", "hook")
    alerts.test("viewer", "hook")
    rows = alerts.proxy.audit.query(AuditQuery(limit=20))
    ops = [(r.username, r.decision, r.targets) for r in rows if "test_alert_channel" in (r.operation or "")]
    assert ("editor", "allow", {"alert_channels": ["hook"]}) in ops
    assert any(user == "viewer" and decision == "deny" for user, decision, _ in ops)


def _second_proxy(alerts: AlertStack, home: Path, worker: tuple[str, str] | None,
                  per_minute: int = 6) -> tuple[RunningProxy, str]:
    """Another proxy over the same specs (its own database), reaching `worker` or none, and an editor's token."""
    platform = Settings(home=home, pipelines_dir=alerts.specs, warehouse_url=f"sqlite:///{home / 'w.db'}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGGREGATOR_API_ALERT_TESTS_PER_MINUTE", str(per_minute))
        proxy = start_api_proxy(alerts.api.upstream_url, f"sqlite:///{home / 'proxy.db'}", platform, worker)
    proxy.store.add_user("ed", PASSWORD, GRANTS["editor"][0])
    token, _ = proxy.store.create_token("ed")
    return proxy, token


def test_send_test_is_rate_limited_per_user(alerts: AlertStack, tmp_path: Path) -> None:
    proxy, token = _second_proxy(alerts, tmp_path, alerts.worker, TESTS_PER_MINUTE)
    try:
        statuses = []
        for _ in range(TESTS_PER_MINUTE + 1):
            response = httpx.post(f"{proxy.url}/api/alerts/channels/unset/test", timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})  # fails fast, sends nothing
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert "AGGREGATOR_API_ALERT_TESTS_PER_MINUTE" in response.json()["detail"]
                break
    finally:
        proxy.stop()
    assert statuses == [200] * TESTS_PER_MINUTE + [429], statuses


def test_without_a_worker_the_route_says_so(alerts: AlertStack, tmp_path: Path) -> None:
    proxy, token = _second_proxy(alerts, tmp_path, None)
    try:
        response = httpx.post(f"{proxy.url}/api/alerts/channels/hook/test", timeout=60,
                              headers={"Authorization": f"Bearer {token}"})
    finally:
        proxy.stop()
    assert response.status_code == 503, response.text
    assert "no worker is configured" in response.json()["detail"] and "alert channel tests" in response.json()["detail"]


# ------------------------------------------------------------------------------------------- configuration


def _config(alerts: AlertStack, who: str = "viewer") -> dict[str, Any]:
    with alerts.client(who) as c:
        response = c.get("/api/alerts/config")
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == response.json()["etag"]
    doc: dict[str, Any] = response.json()
    return doc


def _put(alerts: AlertStack, who: str, block: dict[str, Any], etag: str | None) -> httpx.Response:
    with alerts.client(who) as c:
        return c.put("/api/alerts/config", json={"alerts": block}, headers={"If-Match": etag} if etag else {})


def test_config_reads_channels_with_secret_references_as_written(alerts: AlertStack) -> None:
    doc = _config(alerts)
    assert doc["exists"] and doc["file"] == "alerts.yaml" and doc["own_file"] and not doc["inline_secrets"]
    assert doc["alerts"]["channels"]["hook"]["url"] == {"env": "ALERTS_API_HOOK_URL"}
    assert doc["alerts"]["channels"]["mail"]["password"] == {"env": "ALERTS_API_SMTP_PASSWORD"}
    assert doc["alerts"]["rules"] == [{"when": "run_failure", "channels": ["hook", "mail"]}]
    assert doc["secret_names"] == ["*"]


def test_config_write_is_validated_versioned_and_used_by_the_next_test(alerts: AlertStack) -> None:
    doc = _config(alerts)
    block = doc["alerts"]
    # An unknown channel in a rule: the loader's file:line problem, nothing stored.
    bad = {**block, "rules": [*block["rules"], {"when": "freshness", "channels": ["pager"]}]}
    refused = _put(alerts, "editor", bad, doc["etag"])
    assert refused.status_code == 422, refused.text
    texts = [p["text"] for p in refused.json()["problems"]]
    assert any(t.startswith("alerts.yaml:") and "alerts.rules[1].channels[0]: unknown channel 'pager'" in t
               for t in texts), texts
    # A platform variable is no secret a spec may read.
    reserved = {**block, "channels": {**block["channels"], "x": {"type": "slack", "url": {"env": "AGGREGATOR_WORKER_TOKEN"}}}}
    refused = _put(alerts, "editor", reserved, doc["etag"])
    assert refused.status_code == 422 and "reserved for the platform" in refused.text, refused.text
    # A token written inline is refused before validation.
    inline = {**block, "channels": {**block["channels"], "x": {"type": "webhook", "url": "https://h.example/x?token=abc123"}}}
    refused = _put(alerts, "editor", inline, doc["etag"])
    assert refused.status_code == 422 and "environment references" in refused.json()["detail"], refused.text
    assert _put(alerts, "editor", block, None).status_code == 428
    # A new channel and rule, accepted; the worker sends through it at once.
    good = {**block, "channels": {**block["channels"], "hook2": {"type": "webhook", "url": {"env": "ALERTS_API_HOOK_URL"}}},
            "rules": [*block["rules"], {"when": "freshness", "channels": ["hook2"]}]}
    written = _put(alerts, "editor", good, doc["etag"])
    assert written.status_code == 200, written.text
    assert written.json()["file"] == "alerts.yaml" and written.json()["version"] >= 1
    stale = _put(alerts, "editor", good, doc["etag"])
    assert stale.status_code == 412, stale.text
    after = _config(alerts)
    assert after["etag"] == written.json()["etag"] and after["version"] == written.json()["version"]
    assert after["alerts"]["rules"][-1] == {"when": "freshness", "channels": ["hook2"]}
    saved = (alerts.specs / "alerts.yaml").read_text()
    assert "env: ALERTS_API_HOOK_URL" in saved and HOOK_TOKEN not in saved
    with alerts.client("viewer") as c:
        versions = c.get("/api/alerts/config/versions").json()
    assert versions[0]["username"] == "editor" and "+  - when: freshness" in versions[0]["diff"]
    sent = alerts.test("editor", "hook2")
    assert sent.status_code == 200 and sent.json()["delivered"] is True, sent.text


@pytest.mark.parametrize("who", ["viewer", "launcher", "sales_editor"])
def test_config_write_is_refused_naming_the_permission(alerts: AlertStack, who: str) -> None:
    doc = _config(alerts, who)
    response = _put(alerts, who, doc["alerts"], doc["etag"])
    assert response.status_code == 403, response.text
    assert response.json()["missing_permission"].startswith("editor:update_alert_config")


def test_abilities_tell_the_console_who_may_edit_and_test(alerts: AlertStack) -> None:
    for who, allowed in (("editor", True), ("admin", True), ("viewer", False), ("sales_editor", False)):
        with alerts.client(who) as c:
            abilities = c.get("/_auth/me").json()["abilities"]
        for operation in ("update_alert_config", "test_alert_channel"):
            assert abilities[operation]["allowed"] is allowed, (who, operation)
            assert allowed or abilities[operation]["reason"]
