"""Each write mode through a compiled pipeline, on SQLite, PostgreSQL and MySQL/MariaDB warehouses."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query

SPEC = """
connections:
  src: {{type: sql, config: {{url: "sqlite:///source.db"}}}}
pipelines:
  - name: inv
    sources:
      - name: stock
        connection: src
        stream: {{type: sql, table: stock}}
        write_mode: {mode}
{key}"""

# After two loads with a price change in between: what each mode must leave in the table.
EXPECTED = {
    "replace": [("a", 2.0), ("b", 1.0)],
    "append": [("a", 1.0), ("a", 2.0), ("b", 1.0), ("b", 1.0)],
    "merge": [("a", 2.0), ("b", 1.0)],
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_write_mode(instance: dg.DagsterInstance, mode: str, spec_dir: Path, load_warehouse_url: str, compile_specs: Callable[[str], dg.Definitions]) -> None:
    warehouse_url = load_warehouse_url
    with sqlite3.connect(spec_dir / "source.db") as conn:
        conn.execute("CREATE TABLE stock (sku TEXT PRIMARY KEY, price REAL)")
        conn.executemany("INSERT INTO stock VALUES (?, ?)", [("a", 1.0), ("b", 1.0)])
    # append declares no key: with one, a repeated key is an error (the destination enforces primary keys)
    key = "" if mode == "append" else "        primary_key: [sku]\n"
    (spec_dir / "inv.yaml").write_text(SPEC.format(mode=mode, key=key))
    materialize_all(compile_specs(warehouse_url), instance)
    with sqlite3.connect(spec_dir / "source.db") as conn:
        conn.execute("UPDATE stock SET price = 2.0 WHERE sku = 'a'")
    materialize_all(compile_specs(warehouse_url), instance)
    assert query(warehouse_url, "SELECT sku, price FROM inv_stock ORDER BY sku, price") == EXPECTED[mode]
