"""Each pipeline owns its tables: the loader drops only the pipeline that writes outside its namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.pipelines.isolate import load_isolated
from aggregator.pipelines.namespace import is_system_name, namespace_owner
from aggregator.settings import load_settings

SPECS = """connections:
  files: {{type: files, config: {{base_dir: .}}}}
pipelines:
  - name: sales
    sources:
      - name: orders
        connection: files
        stream: {{type: file, path: orders.csv}}
        table: {table}
  - name: shop
    sources:
      - name: orders
        connection: files
        stream: {{type: file, path: orders.csv}}
"""


@pytest.mark.parametrize(("table", "rule"), [
    ("shop_orders", "outside pipeline 'sales''s namespace"),
    ("sqlite_master", "system catalog name"),
    ("pg_class", "system catalog name"),
    ("information_schema", "system catalog name"),
])
def test_only_the_offending_pipeline_is_dropped(tmp_path: Path, table: str, rule: str) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS.format(table=table))
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    assert loaded.dropped == ["sales"]
    assert {p.name for p, _, _ in loaded.specs.pipelines} == {"shop"}
    [error] = loaded.errors
    assert (error.file, error.line, error.field) == (tmp_path / "specs.yaml", 9, "pipelines[0].sources[0].table")
    assert rule in error.message and error.pipeline == "sales"


def test_a_table_in_the_own_namespace_loads(tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(SPECS.format(table="sales_everything"))
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    assert loaded.errors == [] and loaded.graph.nodes[("sales", "orders")].table == "sales_everything"


def test_two_writers_of_one_table(tmp_path: Path) -> None:
    """The second writer of `shop_orders` (shop's own `table:` for a second source) is refused, not the first."""
    (tmp_path / "specs.yaml").write_text(SPECS.format(table="sales_orders").replace(
        "stream: {type: file, path: orders.csv}\n", "stream: {type: file, path: orders.csv}\n", 1)
        + "      - name: more\n        connection: files\n        stream: {type: file, path: more.csv}\n"
          "        table: shop_orders\n")
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    [error] = loaded.errors
    assert loaded.dropped == ["shop"] and "also written by shop/orders" in error.message, error


@pytest.mark.parametrize(("table", "owner"), [
    ("sales_orders", "sales"), ("sales_eu_orders", "sales_eu"), ("sales_eu", "sales"), ("shop_x", None),
])
def test_the_longest_prefix_owns_a_table(table: str, owner: str | None) -> None:
    assert namespace_owner(table, ["sales", "sales_eu", "sal"]) == owner


def test_system_names() -> None:
    assert all(is_system_name(n) for n in ("sqlite_master", "SQLITE_SEQUENCE", "pg_class", "information_schema"))
    assert not any(is_system_name(n) for n in ("sales_pg_orders", "information_schema_copy", "sqlitex"))


def test_a_table_where_child_tables_go_is_refused(tmp_path: Path) -> None:
    """`shop_orders__items` belongs to the nested source writing `shop_orders`: another source may not take it."""
    (tmp_path / "specs.yaml").write_text(
        "connections:\n  files: {type: files, config: {base_dir: .}}\n"
        "pipelines:\n  - name: shop\n    sources:\n"
        "      - {name: orders, connection: files, stream: {type: file, path: o.jsonl, nested: {}}}\n"
        "      - {name: items, connection: files, stream: {type: file, path: i.csv}, table: shop_orders__items}\n")
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    [error] = loaded.errors
    assert "child tables of shop/orders" in error.message and error.field == "pipelines[0].sources[1].table"
