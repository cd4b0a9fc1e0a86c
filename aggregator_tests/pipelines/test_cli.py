"""The spec commands of the `aggregator` CLI, on the bundled samples."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aggregator.cli import main


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path))
    monkeypatch.delenv("AGGREGATOR_PIPELINES", raising=False)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    return invoke


def test_pipelines_list_and_show(run) -> None:
    listed = run("pipelines", "list")
    assert listed.exit_code == 0, listed.output
    assert "sales" in listed.output and "0 6 * * * UTC" in listed.output and "shop" in listed.output
    shown = run("pipelines", "show", "shop")
    assert shown.exit_code == 0, shown.output
    assert "shop/revenue_by_country" in shown.output and "shop/orders, shop/customers" in shown.output
    assert "accepted_values_status" in shown.output
    assert run("pipelines", "show", "nope").exit_code == 1


def test_connections_check_and_discover(run) -> None:
    checked = run("connections", "check", "shop_db")
    assert checked.exit_code == 0 and "connected (sqlite" in checked.output
    found = run("connections", "discover", "shop_db")
    assert found.exit_code == 0
    assert {"customers", "orders", "updated_at", "integer"} <= set(found.output.split())
    files = run("connections", "discover", "sales_export")
    assert "unit_price" in files.output and "float" in files.output


def test_connections_check_failure_is_readable(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    gone = tmp_path / "nonexistent" / "dir"  # under the data roots (conftest), so the check itself fails
    (specs / "c.yaml").write_text(f"connections:\n  gone:\n    type: files\n    config: {{base_dir: {gone}}}\n")
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(specs))
    result = run("connections", "check", "gone")
    assert result.exit_code == 1
    assert "connection 'gone' failed its check" in result.output and str(gone) in result.output
    assert "Traceback" not in result.output
