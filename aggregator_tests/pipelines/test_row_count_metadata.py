"""`dagster/row_count` on a source's materializations stays exact run after run in every write mode, on both
dialects, now that loads derive it instead of counting the table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query

SPEC = """
connections:
  drop: {{type: files, config: {{base_dir: data}}}}
pipelines:
  - name: shop
    sources:
      - name: orders
        connection: drop
        stream: {{type: file, path: "orders_*.csv"}}
        write_mode: {mode}
{keys}"""


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_row_count_metadata_is_exact_across_runs(
    spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions], mode: str,
    instance: dg.DagsterInstance,
) -> None:
    keys = "        primary_key: [id]\n" if mode == "merge" else ""
    (spec_dir / "shop.yaml").write_text(SPEC.format(mode=mode, keys=keys))
    data = spec_dir / "data"
    data.mkdir()
    # Each run brings a new file whose keys overlap the previous one's (merge updates those, append adds them).
    for run, (start, stop) in enumerate([(1, 40), (30, 70), (70, 70), (60, 100)]):
        (data / f"orders_{run}.csv").write_text("id,amount\n" + "".join(f"{i},{i * 2}\n" for i in range(start, stop)))
        result = materialize_all(compile_specs(warehouse_url), instance)
        (event,) = [e for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["shop", "orders"])]
        reported = event.materialization.metadata["dagster/row_count"].value
        assert reported == query(warehouse_url, "SELECT COUNT(*) FROM shop_orders")[0][0], (mode, run)
