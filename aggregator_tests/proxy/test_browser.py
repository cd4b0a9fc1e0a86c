"""A real browser (Debian's chromium, headless) through the proxy: sign in, the UI loads, live logs appear."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy, bearer
from aggregator_tests.proxy.gql import JOB_SELECTOR, LAUNCH, gql

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is required for the browser test (apt-get install chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def sign_in(browser: Any, proxy: RunningProxy, user: str, path: str = "/") -> Any:
    page = browser.new_page()
    page.set_default_timeout(90_000)
    page.goto(proxy.url + path)
    assert "/_auth/login" in page.url
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def test_sign_in_ui_loads_and_live_logs_appear(browser: Any, proxy: RunningProxy) -> None:
    with httpx.Client(timeout=60) as c:
        launched = gql(c, proxy.url, LAUNCH, {"p": {"selector": JOB_SELECTOR}}, bearer(proxy.tokens["launcher"]))
    run_id = launched.json()["data"]["launchRun"]["run"]["runId"]
    page = sign_in(browser, proxy, "viewer", f"/runs/{run_id}")
    page.wait_for_url(re.compile(rf".*/runs/{run_id}$"))
    # The run page streams its events over the graphql-ws subscription relayed by the proxy.
    page.get_by_text(re.compile("RUN_START|STEP_START|Started execution|sales/orders")).first.wait_for()
    assert page.get_by_text(run_id[:8]).count() > 0
    page.close()


def test_viewers_launch_from_the_ui_is_refused(browser: Any, proxy: RunningProxy) -> None:
    page = sign_in(browser, proxy, "viewer")
    page.wait_for_url(re.compile(r".*/(overview|locations|asset-groups|assets|runs|jobs).*|.*/$"))
    # What the UI's "Launch run" button sends, from the signed-in page (same origin, session cookie).
    result = page.evaluate(
        """async ([query, variables]) => {
            const r = await fetch('/graphql', {method: 'POST', headers: {'content-type': 'application/json'},
                                               body: JSON.stringify({query, variables})});
            return {status: r.status, body: await r.json()};
        }""",
        [LAUNCH, {"p": {"selector": JOB_SELECTOR}}],
    )
    assert result["status"] == 403, json.dumps(result)
    assert result["body"]["missing_permission"] == "launcher:launchRun"
    page.close()
