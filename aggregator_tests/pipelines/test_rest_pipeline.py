"""A REST pipeline against the local test API: incremental merge, and secrets that never leak."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from aggregator_tests.helpers import key_of, materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.testapi import BEARER, LocalApi, make_item, running_api

SPEC = """
connections:
  local_api:
    type: rest
    config:
      base_url: {base_url}
      auth: {{type: bearer, token: {{env: AGG_TEST_API_TOKEN}}}}
      requests_per_second: 50
pipelines:
  - name: catalog
    sources:
      - name: items
        connection: local_api
        stream:
          type: rest
          path: incremental
          params: {{since: "{{cursor}}"}}
          records_path: "$.data"
          pagination: {{type: page_number, page_size_param: null}}
          incremental: {{cursor_path: updated_at}}
        write_mode: merge
        primary_key: [id]
        checks:
          - {{type: unique, columns: [id]}}
  - name: secured
    sources:
      - name: whoami
        connection: local_api
        stream: {{type: rest, path: auth/bearer, records_path: "$.data"}}
        write_mode: replace
"""


@pytest.fixture
def api() -> Iterator[LocalApi]:
    with running_api() as local:
        yield local


def test_rest_pipeline_merges_incrementally_without_leaking_the_token(instance: dg.DagsterInstance, 
    api: LocalApi, spec_dir: Path, warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGG_TEST_API_TOKEN", BEARER)
    (spec_dir / "catalog.yaml").write_text(SPEC.format(base_url=api.url))
    first = materialize_all(compile_specs(warehouse_url), instance)
    assert query(warehouse_url, "SELECT COUNT(*) FROM catalog_items") == [(25,)]

    api.state.items.extend(make_item(i) for i in range(26, 29))
    api.state.items[0] = {**api.state.items[0], "name": "renamed", "updated_at": "2024-02-01T00:00:00"}
    second = materialize_all(compile_specs(warehouse_url), instance)
    events = {key_of(e): e.materialization.metadata for e in second.get_asset_materialization_events()}
    assert events["catalog/items"]["rows_read"].value == 4  # three new, one updated: only what changed
    assert query(warehouse_url, "SELECT COUNT(*) FROM catalog_items") == [(28,)]
    assert query(warehouse_url, "SELECT name FROM catalog_items WHERE id = 1") == [("renamed",)]
    assert api.state.seen and any(p.get("since") == "2024-01-25T00:00:00" for p in api.state.seen)

    # The token reaches the API, but no event of either run holds it.
    for result in (first, second):
        for event in instance.all_logs(result.run_id):
            assert BEARER not in str(event)


NESTED_SPEC = """
connections:
  local_api: {{type: rest, config: {{base_url: {base_url}}}}}
pipelines:
  - name: shop
    sources:
      - name: orders
        connection: local_api
        stream:
          type: rest
          path: incremental
          params: {{since: "{{cursor}}"}}
          records_path: "$.data"
          pagination: {{type: page_number, page_size_param: null}}
          incremental: {{cursor_path: updated_at}}
          nested: {{max_depth: 2}}
        write_mode: merge
        primary_key: [id]
"""


def order(i: int, skus: list[str], updated: str) -> dict[str, object]:
    return {"id": i, "updated_at": updated, "customer": {"name": f"c{i}"},
            "items": [{"sku": s, "qty": n + 1} for n, s in enumerate(skus)]}


def test_nested_rest_pipeline_merges_children_incrementally(
    instance: dg.DagsterInstance, api: LocalApi, spec_dir: Path, warehouse_url: str,
    compile_specs: Callable[[str], dg.Definitions],
) -> None:
    """A spec's `nested:` stream through the Dagster asset: child tables land in the pipeline's namespace, the
    second (incremental) run replaces an updated order's items and keeps the others', and the
    materialization lists the rows written per child table."""
    api.state.items = [order(i, [f"s{i}a", f"s{i}b"], f"2024-01-{i:02d}T00:00:00") for i in range(1, 13)]
    (spec_dir / "shop.yaml").write_text(NESTED_SPEC.format(base_url=api.url))
    materialize_all(compile_specs(warehouse_url), instance)
    assert query(warehouse_url, "SELECT COUNT(*) FROM shop_orders__items") == [(24,)]

    api.state.items[0] = order(1, ["new"], "2024-02-01T00:00:00")
    second = materialize_all(compile_specs(warehouse_url), instance)
    metadata = {key_of(e): e.materialization.metadata for e in second.get_asset_materialization_events()}
    assert metadata["shop/orders"]["rows_read"].value == 1
    assert metadata["shop/orders"]["child_tables"].value == {"shop_orders__items": 1}
    assert query(warehouse_url, "SELECT i.sku FROM shop_orders o JOIN shop_orders__items i "
                                "ON i._dlt_parent_id = o._dlt_id WHERE o.id = 1") == [("new",)]
    assert query(warehouse_url, "SELECT COUNT(*) FROM shop_orders__items") == [(23,)]
    assert query(warehouse_url, "SELECT customer__name FROM shop_orders WHERE id = 1") == [("c1",)]
