"""Issue 11.9: an opt-in sample of rows in the materialization metadata (off by default, sensitive columns
masked) and `aggregator tables preview <asset> [--limit N]`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.helpers import materialize_all

SPEC = """
connections:
  f: {type: files, config: {base_dir: data}}
pipelines:
  - name: crm
    sources:
      - name: people
        connection: f
        stream: {type: file, path: people.csv}
        preview_rows: 2
        sensitive_columns: [email]
      - {name: quiet, connection: f, stream: {type: file, path: people.csv}}
"""


@pytest.fixture
def crm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    specs = tmp_path / "specs"
    (specs / "data").mkdir(parents=True)
    (specs / "data" / "people.csv").write_text("id,name,email\n1,Ada,ada@example.com\n2,Bo,bo@example.com\n3,Cy,\n")
    (specs / "crm.yaml").write_text(SPEC)
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(specs))
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGREGATOR_WAREHOUSE_URL", raising=False)
    return specs


def test_preview_is_opt_in_and_masks_sensitive_columns(crm: Path) -> None:
    result = materialize_all(build_definitions(load_specs(crm), load_settings()))
    by_key = {str(e.asset_key.to_user_string() if e.asset_key else ""): e.materialization.metadata
              for e in result.get_asset_materialization_events()}
    assert "preview" not in by_key["crm/quiet"]  # off by default
    table = by_key["crm/people"]["preview"].value
    assert isinstance(table, dg.TableMetadataValue)
    assert [r.data for r in table.records] == [
        {"id": 1, "name": "Ada", "email": "***"}, {"id": 2, "name": "Bo", "email": "***"}]


def test_tables_preview_command(crm: Path) -> None:
    runner = CliRunner()
    assert "has it been materialized" in runner.invoke(main, ["tables", "preview", "crm/people"]).output
    materialize_all(build_definitions(load_specs(crm), load_settings()))
    shown = runner.invoke(main, ["tables", "preview", "crm/people", "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    assert "Ada" in shown.output and "Cy" in shown.output and "***" in shown.output
    assert "example.com" not in shown.output
    unknown = runner.invoke(main, ["tables", "preview", "crm/nope"])
    assert unknown.exit_code == 1 and "known: crm/people, crm/quiet" in unknown.output
