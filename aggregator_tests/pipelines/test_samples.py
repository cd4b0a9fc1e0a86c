"""The bundled samples: the shop pipeline syncs incrementally (merge on id) and its aggregate is right."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator.settings import EXAMPLE_PIPELINES_DIR
from aggregator_tests.helpers import key_of, materialize_all
from aggregator_tests.pipelines.conftest import query
from scripts.generate_shop_db import advance


@pytest.fixture
def shop_copy(spec_dir: Path) -> Path:
    """The shop sample with its own copy of the database, so the test can add activity to it."""
    (spec_dir / "data").mkdir()
    shutil.copyfile(EXAMPLE_PIPELINES_DIR / "shop.yaml", spec_dir / "shop.yaml")
    shutil.copyfile(EXAMPLE_PIPELINES_DIR / "data" / "shop.db", spec_dir / "data" / "shop.db")
    return spec_dir / "data" / "shop.db"


def rows_written(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    return {
        key_of(e): int(str(e.materialization.metadata["rows_written"].value))
        for e in result.get_asset_materialization_events()
        if "rows_written" in e.materialization.metadata
    }


def test_shop_loads_incrementally_and_merges(instance: dg.DagsterInstance, 
    shop_copy: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]
) -> None:
    first = materialize_all(compile_specs(warehouse_url), instance)
    with sqlite3.connect(shop_copy) as src:
        source_orders = src.execute("SELECT id, status, amount FROM orders ORDER BY id").fetchall()
    assert rows_written(first) == {"shop/customers": 300, "shop/orders": len(source_orders)}

    second = materialize_all(compile_specs(warehouse_url), instance)
    assert rows_written(second) == {"shop/customers": 0, "shop/orders": 0}, "nothing changed, nothing loaded"

    advance(shop_copy, new_orders=50, updates=20, seed=1)
    third = materialize_all(compile_specs(warehouse_url), instance)
    assert rows_written(third)["shop/orders"] == 70  # 50 new + 20 updated rows, read by cursor
    with sqlite3.connect(shop_copy) as src:
        source_orders = src.execute("SELECT id, status, amount FROM orders ORDER BY id").fetchall()
    assert query(warehouse_url, "SELECT id, status, amount FROM shop_orders ORDER BY id") == source_orders

    # The aggregate equals the same computation done directly on the source database.
    with sqlite3.connect(shop_copy) as src:
        expected = src.execute(
            "SELECT c.country, o.status, COUNT(*), ROUND(SUM(o.amount), 2) FROM orders o JOIN customers c "
            "ON c.id = o.customer_id WHERE o.status <> 'cancelled' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    actual = query(warehouse_url, "SELECT country, status, orders, revenue FROM shop_revenue_by_country ORDER BY 1, 2")
    assert [(c, s, n, pytest.approx(float(r), abs=0.011)) for c, s, n, r in actual] == expected

    cursor = third.get_asset_materialization_events()
    meta = {key_of(e): e.materialization.metadata for e in cursor}["shop/orders"]
    assert meta["cursor_before"].value != meta["cursor_after"].value


def test_online_github_sample_compiles_with_schedules_off(tmp_path: Path) -> None:
    """It is documented and loadable, but never runs by itself: tests and the default platform stay offline."""
    from aggregator.pipelines.compile import build_definitions
    from aggregator.pipelines.load import load_specs
    from aggregator.settings import load_settings

    examples = EXAMPLE_PIPELINES_DIR.parent
    defs = build_definitions(load_specs(examples), load_settings({"AGGREGATOR_HOME": str(tmp_path)}))
    for name in ("github_dagster", "github_dlt"):
        assert defs.resolve_schedule_def(f"{name}_schedule").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_job_def("shop_job") and defs.resolve_job_def("sales_job")
