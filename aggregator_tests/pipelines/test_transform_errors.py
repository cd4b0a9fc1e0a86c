"""Issue 11.3: a column typo in a transform points back at the spec (file, line, step, SQL), at run time and
in `aggregator validate --warehouse`, which prepares the SQL against the warehouse without running it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from aggregator.pipelines.validate import validate
from aggregator.settings import Settings
from aggregator_tests.pipelines.conftest import query
from connectors.sql.engines import engine_for

SPEC = """
connections:
  csv_files:
    type: files
    config: {base_dir: data}
pipelines:
  - name: shop
    sources:
      - {name: lines, connection: csv_files, stream: {type: file, path: lines.csv}}
    transforms:
      - name: by_sku
        from: lines
        steps:
          - filter: qty > 0
          - aggregate:
              group_by: [sku]
              metrics: {units: SUM(QUANTITY_FIELD)}
      - name: top
        sql: "SELECT sku FROM {{ ref('by_sku') }} ORDER BY units DESC"
"""
AGGREGATE_LINE = 15  # the `- aggregate:` step


@pytest.fixture
def warehouse_url(load_warehouse_url: str) -> str:
    """Every dialect pipelines load into, MySQL/MariaDB too: transforms run where the loads land."""
    return load_warehouse_url


def _write(spec_dir: Path, column: str) -> None:
    (spec_dir / "data").mkdir(exist_ok=True)
    (spec_dir / "data" / "lines.csv").write_text("sku,qty\na,1\nb,3\na,2\n")
    (spec_dir / "shop.yaml").write_text(SPEC.replace("QUANTITY_FIELD", column))


def test_column_typo_fails_with_file_line_step_and_sql(instance: dg.DagsterInstance, 
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    """The reported case: `SUM(qnty)` failed with a raw OperationalError, CTE names like step_2 and a
    20-frame stack. The failure now names the spec file and line of the step, the step and its SQL."""
    _write(spec_dir, "qnty")
    defs = compile_specs(warehouse_url)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None, "the transform raised a raw exception instead of dg.Failure"
    assert failure.description is not None
    assert failure.description.startswith(f"{spec_dir / 'shop.yaml'}:{AGGREGATE_LINE}: pipelines[0].transforms[0].steps[1]:")
    assert "step 2 (aggregate)" in failure.description and "qnty" in failure.description
    metadata = {k: str(v.value) for k, v in failure.metadata.items()}
    assert metadata["spec"] == f"{spec_dir / 'shop.yaml'}:{AGGREGATE_LINE}"
    assert "SUM(qnty)" in metadata["fragment"] and "SUM(qnty)" in metadata["sql"]


def test_validate_warehouse_prepares_every_transform(instance: dg.DagsterInstance, 
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
    settings_for: Callable[[str], Settings],
) -> None:
    """`validate` alone cannot know the columns; `--warehouse` EXPLAINs each transform (downstream ones against
    the columns the new upstream definition produces) and writes nothing."""
    _write(spec_dir, "qty")
    settings = settings_for(warehouse_url)
    before = validate(spec_dir, settings, warehouse=True)
    # A pipeline that has never run is not an error (CI validates pull requests that add pipelines): what could
    # not be checked is said instead.
    assert before.ok and len(before.unchecked) == 1, before.unchecked
    if warehouse_url.startswith("sqlite"):  # checked without creating the database file
        assert "destination 'warehouse'" in before.unchecked[0].message
        assert "does not exist yet" in before.unchecked[0].message
        assert not Path(warehouse_url.removeprefix("sqlite:///")).exists()
    else:
        assert before.unchecked[0].message.startswith("source shop/lines: table shop_lines does not exist in ")
        assert before.unchecked[0].message.endswith(" yet; materialize it so the transforms reading it can be checked")
    job = compile_specs(warehouse_url).resolve_implicit_global_asset_job_def()
    job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(["shop", "lines"])])
    assert validate(spec_dir, settings, warehouse=True).ok

    _write(spec_dir, "qnty")
    assert validate(spec_dir, settings).ok  # the typo parses: only the warehouse knows the columns
    report = validate(spec_dir, settings, warehouse=True)
    assert [(e.line, e.field) for e in report.errors] == [(AGGREGATE_LINE, "pipelines[0].transforms[0].steps[1]")]
    assert "step 2 (aggregate)" in report.errors[0].message and "qnty" in report.errors[0].message
    engine = sa.create_engine(warehouse_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables & {"shop_by_sku", "shop_top"} == set()  # nothing was built
    assert query(warehouse_url, "SELECT COUNT(*) FROM shop_lines") == [(3,)]


def test_validate_warehouse_leaves_no_shadow_behind_in_pooled_sessions(instance: dg.DagsterInstance,
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
    settings_for: Callable[[str], Settings],
) -> None:
    """The check hides each transform's table behind an empty stand-in with its new columns (MySQL: a TEMPORARY
    table, which a rollback does not remove). A pooled session that kept one would show the next reader in this
    process an empty table instead of the real one."""
    _write(spec_dir, "qty")
    compile_specs(warehouse_url).resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert validate(spec_dir, settings_for(warehouse_url), warehouse=True).ok
    with engine_for(warehouse_url).connect() as conn:  # the engine (and pool) the check used
        assert conn.execute(sa.text("SELECT COUNT(*) FROM shop_by_sku")).scalar_one() == 2
