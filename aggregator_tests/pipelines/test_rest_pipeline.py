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
