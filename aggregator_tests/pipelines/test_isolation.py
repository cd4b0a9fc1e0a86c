"""Issue 11.2: one broken spec file drops only its own pipelines; the others load, run and keep their
schedules while every problem stays visible (platform/spec_errors, `aggregator validate`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

import aggregator.definitions
from aggregator.cli import main
from aggregator.pipelines.platform_assets import CHECK_NAME, SPEC_ERRORS_KEY
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query

GOOD = """
connections:
  csv_files:
    type: files
    config: {base_dir: data}
pipelines:
  - name: good
    schedule: {cron: "0 5 * * *"}
    sources:
      - {name: items, connection: csv_files, stream: {type: file, path: items.csv}}
    transforms:
      - name: total
        sql: "SELECT SUM(amount) AS amount FROM {{ ref('items') }}"
"""

# An unknown step kind (line 10) and, in the same file, a connection with a bad config: both are reported.
BROKEN = """
connections:
  broken_api:
    type: rest
    config: {base_url: 42, no_such_option: true}
pipelines:
  - name: broken
    schedule: {cron: "0 7 * * *"}
    sources:
      - {name: things, connection: csv_files, stream: {type: file, path: items.csv}}
    transforms:
      - name: summary
        from: things
        steps:
          - explode: {column: amount}
"""

# Valid on its own, but reads a connection whose config does not build: only this pipeline is dropped.
USES_BAD_CONNECTION = """
connections:
  bad_db:
    type: sql
    config: {url: 17, pool: nonsense}
pipelines:
  - name: orphan
    sources:
      - {name: rows, connection: bad_db, stream: {type: sql, table: t}}
"""


@pytest.fixture
def pipelines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    specs = tmp_path / "specs"
    (specs / "data").mkdir(parents=True)
    (specs / "data" / "items.csv").write_text("id,amount\n1,10\n2,32\n")
    (specs / "good.yaml").write_text(GOOD)
    (specs / "broken.yaml").write_text(BROKEN)
    (specs / "orphan.yaml").write_text(USES_BAD_CONNECTION)
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(specs))
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGREGATOR_WAREHOUSE_URL", raising=False)
    return specs


def test_broken_spec_drops_only_its_own_pipelines(instance: dg.DagsterInstance, pipelines: Path, tmp_path: Path) -> None:
    """The reported case: a broken inventory.yaml made the code location fail, so every other pipeline and its
    schedule vanished. Now the good pipeline loads, materializes and keeps its schedule, and the errors are
    listed by platform/spec_errors, whose check fails naming file, line and field of each."""
    defs = importlib.reload(aggregator.definitions).defs()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"good/items", "good/total", "platform/spec_errors"} <= keys
    assert not any(k.startswith(("broken/", "orphan/")) for k in keys)
    assert defs.resolve_schedule_def("good_schedule").cron_schedule == "0 5 * * *"
    assert "sales/region_leaderboard" not in keys  # the samples' Python asset loads only with the samples

    description = graph.get(SPEC_ERRORS_KEY).description or ""
    broken, orphan = pipelines / "broken.yaml", pipelines / "orphan.yaml"
    assert f"{broken}:15: pipelines[0].transforms[0].steps[0]:" in description
    assert f"{broken}:5: connections.broken_api.config.no_such_option: unknown option no_such_option" in description  # config error of a file left out
    assert f"{orphan}:5: connections.bad_db.config.pool: unknown option pool" in description
    assert "pipeline 'orphan' is not loaded" in description
    assert "pipelines not loaded: broken, orphan" in description

    result = materialize_all(defs, instance)
    assert query(f"sqlite:///{tmp_path / 'home' / 'warehouse.db'}", "SELECT amount FROM good_total") == [(42,)]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[CHECK_NAME].passed is False
    listed = str(checks[CHECK_NAME].metadata["errors"].value)
    assert f"{broken}:15" in listed and f"{orphan}:5" in listed


def test_spec_errors_sensor_records_each_change(pipelines: Path) -> None:
    """Alerting needs a check result, not only a description: the sensor launches platform/spec_errors when
    the set of problems changes, and stays quiet while it does not."""
    defs = importlib.reload(aggregator.definitions).defs()
    sensor = defs.resolve_sensor_def("platform_spec_errors_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
        assert [r.asset_selection for r in first.run_requests] == [[SPEC_ERRORS_KEY]]
        again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
        assert again.run_requests == []
        (pipelines / "broken.yaml").unlink()
        (pipelines / "orphan.yaml").unlink()
        fixed = importlib.reload(aggregator.definitions).defs()
        sensor = fixed.resolve_sensor_def("platform_spec_errors_sensor")
        cleared = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=fixed))
        assert len(cleared.run_requests) == 1  # the check turns green again
    assert "No problems" in (fixed.resolve_asset_graph().get(SPEC_ERRORS_KEY).description or "")


def test_validate_lists_spec_and_connection_errors_in_one_pass(pipelines: Path) -> None:
    """Issue 11.4: spec-level errors used to hide connection-config errors until they were fixed."""
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    broken, orphan = pipelines / "broken.yaml", pipelines / "orphan.yaml"
    assert f"{broken}:15: pipelines[0].transforms[0].steps[0]" in result.output
    assert f"{broken}:5: connections.broken_api.config.no_such_option: unknown option no_such_option" in result.output
    assert f"{orphan}:5: connections.bad_db.config.pool: unknown option pool" in result.output


def test_pipeline_commands_work_beside_a_broken_file(pipelines: Path) -> None:
    """`pipelines list/show` used to fail on any broken file; the good pipeline is listed and shown, and a
    dropped one says why."""
    runner = CliRunner()
    listed = runner.invoke(main, ["pipelines", "list"])
    assert listed.exit_code == 0, listed.output
    assert "good" in listed.output and "0 5 * * * UTC" in listed.output
    assert "pipelines not loaded: broken, orphan" in listed.output
    shown = runner.invoke(main, ["pipelines", "show", "good"])
    assert shown.exit_code == 0 and "good/total" in shown.output
    dropped = runner.invoke(main, ["pipelines", "show", "orphan"])
    assert dropped.exit_code == 1 and "it is not loaded because of" in dropped.output
    assert "connection(s) bad_db have errors" in dropped.output
