"""What the Console's browser tests share: the Chromium they drive, signing in through the proxy, and axe."""

from __future__ import annotations

import re
from typing import Any, Protocol

from aggregator_tests.proxy.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


class Served(Protocol):
    url: str


def signed_in(browser: Any, platform: Served, user: str, path: str, password: str = PASSWORD,
              **context: Any) -> Any:
    """A new browser context's page on `/console/<path>`, signed in as `user` through the proxy's form."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{platform.url}/console/{path}")
    page.wait_for_url(re.compile(r".*/_auth/login\?next=.*"))  # no session: the proxy's sign-in, then back
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf".*/console/{re.escape(path)}$"))
    return page


def serious_axe(page: Any, axe_source: str) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is (the context must bypass the CSP)."""
    page.add_script_tag(content=axe_source)
    violations: list[dict[str, Any]] = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
        .violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                               nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    return [v for v in violations if v["impact"] in ("serious", "critical")]
