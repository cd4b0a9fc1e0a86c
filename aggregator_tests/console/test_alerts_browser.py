"""The Console's Alerts page in real Chromium against a real `aggregator dev`: an editor changes a rule, saves
it (a bad rule first: the server's `file:line` problem shows under that rule), sends a test through a webhook
channel to a real HTTP server and sees the result in place and in the history; a viewer and a scoped editor
see it read-only with the reason; axe finds nothing serious.

The webhook URL is a secret from the environment of `aggregator dev` (the worker's): the page only ever shows
the variable's name.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import open_store
from aggregator.settings import EXAMPLE_PIPELINES_DIR
from aggregator_tests.alerts.receivers import HttpReceiver, start_http_receiver
from aggregator_tests.console.browser import CHROMIUM, serious_axe, signed_in
from aggregator_tests.dev_process import start_dev
from aggregator_tests.process_env import platform_env
from aggregator_tests.proxy.conftest import PASSWORD, free_port
from aggregator_tests.tools import needs_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800),
              needs_tool(shutil.which(CHROMIUM), "Chromium at /usr/bin/chromium drives the Console"),
              needs_tool(shutil.which("npm"), "npm installs axe-core for the accessibility check")]

HOOK_TOKEN = "ui-hook-token-4b7d"
ALERTS_YAML = """alerts:
  delivery: {attempts: 1, backoff_seconds: 0}
  channels:
    hook:
      type: webhook
      url: {env: ALERTS_UI_HOOK_URL}
  rules:
    - {when: run_failure, channels: [hook]}
"""


@dataclass
class Platform:
    url: str
    home: Path


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    found, thread = start_http_receiver()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, receiver: HttpReceiver) -> Iterator[Platform]:
    """`aggregator dev` over the samples plus `alerts.yaml`, with a viewer, an editor and a `sales` editor."""
    root = tmp_path_factory.mktemp("alerts-dev")
    specs = root / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, specs)
    (specs / "alerts.yaml").write_text(ALERTS_YAML)
    home = root / "home"
    env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs), AGGREGATOR_ADMIN_PASSWORD=PASSWORD,
                       ALERTS_UI_HOOK_URL=f"{receiver.base_url}/hook?token={HOOK_TOKEN}")
    dev = start_dev(env, free_port(), root)
    try:
        store, _audit = open_store(f"sqlite:///{home / 'proxy.db'}")
        store.add_user("vic", PASSWORD, Role.viewer)
        store.add_user("eddie", PASSWORD, Role.editor)
        store.add_user("sam", PASSWORD, Role.editor, scope=["sales"])
        token, _ = store.create_token("admin")
        store.engine.dispose()
        _wait_for_worker(dev.url, token)
        yield Platform(dev.url, home)
    finally:
        dev.stop(timeout_s=120)


def _wait_for_worker(url: str, token: str) -> None:
    """`aggregator dev` starts its worker once the platform is up: wait until a call through the proxy reaches it
    (a source preview, which answers 503 until then)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        while True:
            answer = client.post("/api/pipelines/sales/sources/orders/preview", json={"limit": 1})
            if answer.status_code != 503:
                assert answer.status_code == 200, answer.text
                return
            time.sleep(0.5)


def test_an_editor_edits_a_rule_saves_and_sends_a_test(browser: Any, platform: Platform, receiver: HttpReceiver,
                                                       console_checkout: Path, artifacts_dir: Path) -> None:
    axe_source = (console_checkout / "node_modules" / "axe-core" / "axe.min.js").read_text()
    page = signed_in(browser, platform, "eddie", "alerts", bypass_csp=True)
    hook = page.get_by_role("group", name="Channel hook (webhook)")
    assert hook.get_by_label("URL (environment variable)").input_value() == "ALERTS_UI_HOOK_URL"
    assert HOOK_TOKEN not in page.content()
    rule = page.get_by_role("group", name="Rule 1")
    # A rule without a channel: the server refuses it and the problem is shown under that rule.
    rule.get_by_role("checkbox", name="hook").uncheck()
    page.get_by_role("button", name="Save alert configuration").click()
    problem = rule.get_by_role("alert")
    problem.wait_for()
    assert re.search(r"alerts\.yaml:\d+: alerts\.rules\[0\]\.channels: ", problem.inner_text()), problem.inner_text()
    rule.get_by_role("checkbox", name="hook").check()
    rule.get_by_label("When").select_option("check_failure")
    rule.get_by_label("Lowest severity").select_option("WARN")
    page.get_by_role("button", name="Save alert configuration").click()
    page.get_by_text(re.compile(r"Saved as version \d+ of alerts\.yaml")).wait_for()
    saved = (platform.home.parent / "specs" / "alerts.yaml").read_text()
    assert "when: check_failure" in saved and "severity: WARN" in saved and "env: ALERTS_UI_HOOK_URL" in saved, saved

    before = len(receiver.requests)
    hook.get_by_role("button", name="Send test through hook").click()
    result = page.get_by_test_id("test-result-hook")
    result.wait_for()
    assert result.inner_text().startswith("Delivered"), result.inner_text()
    assert len(receiver.requests) == before + 1 and receiver.requests[-1].json()["kind"] == "test"
    page.get_by_role("cell", name="TEST: alert channel hook works").first.wait_for()
    axe = serious_axe(page, axe_source)
    page.screenshot(path=str(artifacts_dir / "alerts-tested.png"), full_page=True)
    page.context.close()
    assert not axe, json.dumps(axe, indent=1)


@pytest.mark.parametrize(("user", "reason"), [
    ("vic", "needs role editor; vic has viewer"),
    ("sam", "needs an unscoped editor grant; sam's is limited to sales"),
])
def test_those_the_api_refuses_see_it_read_only_with_the_reason(browser: Any, platform: Platform, user: str,
                                                                reason: str) -> None:
    page = signed_in(browser, platform, user, "alerts")
    page.get_by_text(f"Editing the alert configuration is not available to you: {reason}.").wait_for()
    page.get_by_text(f"Sending a test is not available to you: {reason}.").first.wait_for()
    hook = page.get_by_role("group", name="Channel hook (webhook)")
    assert hook.get_by_label("URL (environment variable)").is_disabled()
    assert page.get_by_role("button", name="Save alert configuration").count() == 0
    assert page.get_by_role("button", name=re.compile("^Send test")).count() == 0
    page.context.close()
    refused = httpx.post(f"{platform.url}/api/alerts/channels/hook/test", timeout=60,
                         auth=None, headers={"Authorization": f"Bearer {_token(platform, user)}"})
    assert refused.status_code == 403 and refused.json()["missing_permission"].startswith("editor:test_alert_channel")


def _token(platform: Platform, user: str) -> str:
    store, _audit = open_store(f"sqlite:///{platform.home / 'proxy.db'}")
    try:
        token, _ = store.create_token(user)
    finally:
        store.engine.dispose()
    return token
