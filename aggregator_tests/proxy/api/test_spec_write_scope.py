"""`SpecStore.write` shows its `authorize` check what the loader says the write changes at the store revision
it commits against (compare-and-swap), so a template another writer changes meanwhile — on this replica or
another — cannot slip an instance past the grant."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.pipelines.declared import Impact
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.spec_store import SpecStore
from aggregator.settings import Settings

TEMPLATE = """templates:
  t:
    params: [n]
    pipeline:
      name: "${n}"
      sources:
        - {name: orders, connection: files, stream: {type: file, path: o.csv}}
"""

MINE = """connections:
  files: {type: files, config: {base_dir: .}}
pipelines:
  - name: mine
    sources:
      - {name: orders, connection: files, stream: {type: file, path: o.csv}}
  - {use: t, with: {n: other}}
"""


def test_a_template_changed_during_the_write_is_seen(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    # Before: template t makes `<n>_copy`, so MINE's instance is `other_copy` (inside the grant).
    (specs / "t.yaml").write_text(TEMPLATE.replace('name: "${n}"', 'name: "${n}_copy"'))
    store = SpecStore(sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}"),
                      Settings(home=tmp_path, pipelines_dir=specs, warehouse_url=f"sqlite:///{tmp_path / 'w.db'}"))
    seen: list[Impact] = []

    def authorize(impact: Impact) -> None:
        seen.append(impact)
        if len(seen) == 1:
            # Another replica changes the template between this authorization and the commit: MINE's
            # instance becomes `other`.
            store.db.commit({"t.yaml": TEMPLATE}, store.db.head(), "other-replica", "api:update")
        if "other" in impact.pipelines:
            raise ApiError(403, "outside the grant", "editor:create_pipeline on other")

    with pytest.raises(ApiError) as refused:
        store.write("mine", "mine.yaml", MINE, "scoped", "create", None, "pipeline", authorize)
    assert refused.value.status == 403
    assert [sorted(i.pipelines) for i in seen] == [["mine", "other_copy"], ["mine", "other"]]
    assert not (specs / "mine.yaml").exists() and store.history("mine") == []
    assert "mine.yaml" not in store.db.snapshot().files
