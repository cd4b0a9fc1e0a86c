"""The code location loads: the smoke test every Dagster project should have."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg

import aggregator.definitions


def load_defs() -> dg.Definitions:
    return importlib.reload(aggregator.definitions).defs()


def test_definitions_load(aggregator_home: Path) -> None:
    defs = load_defs()
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"sales/orders", "sales/daily_sales", "sales/region_leaderboard"} <= keys
    defs.resolve_all_job_defs()  # every job's resources resolve


def test_sample_pipeline_is_one_group_with_a_schedule(aggregator_home: Path) -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys() if k.path[0] == "sales"}
    assert groups == {"sales"}
    schedule = defs.resolve_schedule_def("sales_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_daily_sales_depends_on_orders(aggregator_home: Path) -> None:
    graph = load_defs().resolve_asset_graph()
    assert graph.get(dg.AssetKey(["sales", "daily_sales"])).parent_keys == {dg.AssetKey(["sales", "orders"])}


def test_warehouse_lives_under_aggregator_home(aggregator_home: Path) -> None:
    defs = load_defs()
    assert defs.resources is not None
    warehouse = defs.resources["warehouse"]
    assert warehouse.url == f"sqlite:///{aggregator_home / 'warehouse.db'}"
