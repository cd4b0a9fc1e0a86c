"""The UI's Materialize button for a launcher scoped to `sales`, in a real browser through the proxy."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aggregator_tests.proxy.conftest import PASSWORD
from aggregator_tests.proxy.policy_stack import PolicyStack, policy_stack

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PolicyStack]:
    yield from policy_stack(tmp_path_factory.mktemp("policy-browser"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required for the browser test (apt-get install chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def new_runs(stack: PolicyStack, before: set[str], timeout_s: float = 120) -> list[dict[str, Any]]:
    """Runs created since `before`, waiting while the browser's request travels (progress, not a deadline)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        created = stack.run_ids() - before
        if created:
            return stack.runs(created)
        time.sleep(0.5)
    return []


def test_scoped_launcher_can_use_the_materialize_button(browser: Any, stack: PolicyStack) -> None:
    """`__ASSET_JOB` was always refused for a scoped launcher, so the Materialize button failed even for assets
    inside its scope. Clicking it on `sales/orders` now launches exactly that asset."""
    # Dagster's community pop-up would cover the button; it is shown until this is set (a viewer mutation).
    assert stack.post("sales-launcher", "mutation { setNuxSeen }").status_code == 200
    page = browser.new_page()
    page.set_default_timeout(90_000)
    try:
        page.goto(f"{stack.proxy.url}/assets/sales/orders")
        assert "/_auth/login" in page.url
        page.fill("input[name=username]", "sales-launcher")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/assets/sales/orders.*"))
        before = stack.run_ids()
        # The UI posts to /graphql?op=<operation>; the launch is whichever launch mutation it chose.
        with page.expect_response(lambda r: "/graphql" in r.url and r.request.method == "POST"
                                  and re.search(r"launch(Run|PipelineExecution|MultipleRuns)\(",
                                                r.request.post_data or "") is not None) as launched:
            page.locator("button", has=page.locator("span", has_text=re.compile(r"^Materialize$"))).first.click()
        assert launched.value.status == 200, launched.value.text()
        runs = new_runs(stack, before)
    finally:
        page.close()
    assert len(runs) == 1, runs
    assert runs[0]["jobName"].startswith("__ASSET_JOB")
    assert [a["path"] for a in runs[0]["assetSelection"]] == [["sales", "orders"]]
    assert {"key": "user", "value": "sales-launcher"} in runs[0]["tags"]
