"""The Schema mapping page in real Chromium against a real `aggregator dev` (the fixtures of
test_console_browser.py): an editor renames and excludes columns of a CSV source, saves, a run loads the table
under the new names without the excluded column; a viewer sees the page read-only with the reason; axe finds
nothing serious."""
# The shared fixtures are imported by name (pytest finds them in this module), so the tests' parameters
# "redefine" them for ruff.
# ruff: noqa: F811

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from aggregator_tests.console.browser import serious_axe, signed_in
from aggregator_tests.console.test_console_browser import (  # noqa: F401 - fixtures used by name
    Platform,
    _wait_run,
    local_api,
    platform,
    pytestmark,
)

MAPME = """pipelines:
  - name: mapme
    sources:
      - name: people
        connection: sales_export
        stream: {type: file, path: mapme_people.csv}
"""


def _client(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.admin_token}"},
                        timeout=120)


def test_an_editor_maps_columns_saves_runs_and_the_table_has_the_new_names(
        browser: Any, platform: Platform, console_checkout: Path, artifacts_dir: Path) -> None:
    (platform.home.parent / "specs" / "data" / "mapme_people.csv").write_text(
        "Full Name,ssn,age\nAda,111-22-3333,36\nGrace,444-55-6666,45\n")
    with _client(platform) as client:
        created = client.post("/api/pipelines", json={"name": "mapme", "yaml": MAPME})
        assert created.status_code == 201, created.text
    axe_source = (console_checkout / "node_modules" / "axe-core" / "axe.min.js").read_text()

    page = signed_in(browser, platform, "eddie", "builder/mapme", bypass_csp=True)
    page.locator(".react-flow__node").filter(has_text="source: people").click()
    page.get_by_role("link", name="Schema mapping").click()
    page.get_by_role("heading", name="Schema mapping: mapme.people").wait_for()
    rename = page.get_by_label("Table column for Full Name")
    rename.wait_for()
    table = page.get_by_test_id("mapping-table")
    assert "not yet" in table.inner_text()  # discovered, never loaded
    rename.fill("full_name")
    page.get_by_label("Exclude ssn").check()
    page.get_by_label("Declared type of age").select_option("integer")
    page.get_by_role("button", name="Save mapping").click()
    page.get_by_test_id("save-result").wait_for()
    axe_found = serious_axe(page, axe_source)
    page.screenshot(path=str(artifacts_dir / "schema-mapping-saved.png"), full_page=True)

    with _client(platform) as client:
        saved = client.get("/api/pipelines/mapme").json()["yaml"]
        assert "Full Name: {rename: full_name}" in saved and "ssn: {exclude: true}" in saved, saved
        launched = client.post("/api/pipelines/mapme/trigger", json={})
        assert launched.status_code == 201, launched.text
        _wait_run(client, launched.json()["run_id"])
        answer = client.post("/api/query", json={"sql": "SELECT * FROM mapme_people ORDER BY age"})
        assert answer.status_code == 200, answer.text
        result = answer.json()
    assert result["columns"] == ["full_name", "age"], result
    assert result["rows"] == [["Ada", 36], ["Grace", 45]]

    # The page after the run: the table has the renamed column, the excluded one is no drift.
    page.reload()
    page.get_by_label("Table column for Full Name").wait_for()
    page.get_by_test_id("mapping-table").get_by_text("full_name (text)").wait_for()
    page.context.close()
    assert not axe_found, json.dumps(axe_found, indent=1)


def test_a_viewer_sees_the_mapping_read_only_with_the_reason(browser: Any, platform: Platform) -> None:
    page = signed_in(browser, platform, "vic", "pipelines/shop/sources/customers/mapping")
    note = page.get_by_role("note").filter(has_text="Editing this mapping is not available to you")
    note.wait_for()
    assert "needs role editor; vic has viewer" in note.inner_text()
    page.get_by_label("Table column for id").wait_for()
    assert page.get_by_label("Table column for id").is_disabled()
    assert page.get_by_role("button", name="Save mapping").count() == 0
    page.context.close()
