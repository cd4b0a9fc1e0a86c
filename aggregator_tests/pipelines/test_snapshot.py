"""The spec snapshot that pins a run: inherited by child processes, never used by the process that made it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.pipelines import snapshot

REPO = Path(__file__).resolve().parents[2]
CHILD = "import json, sys; from pathlib import Path; from aggregator.pipelines.snapshot import inherited; " \
        "t = inherited(Path(sys.argv[1])); print(json.dumps(None if t is None else {str(k): v for k, v in t.items()}))"


def _child_view(root: Path) -> dict[str, str] | None:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root)], cwd=REPO, env=dict(os.environ),
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "file"])
def test_children_load_the_snapshot_the_parent_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    monkeypatch.delenv(snapshot.SNAPSHOT_ENV, raising=False)
    if not inline:
        monkeypatch.setattr(snapshot, "INLINE_MAX", 0)  # force the file form used for large spec sets
    root = tmp_path / "specs"
    root.mkdir()
    (root / "a.yaml").write_text("pipelines: []\n")
    texts = snapshot.pinned_texts(root, tmp_path / "home")
    assert texts == {root / "a.yaml": "pipelines: []\n"}
    assert os.environ[snapshot.SNAPSHOT_ENV].startswith("json:") is inline
    assert (tmp_path / "home" / "spec_snapshots").exists() is not inline

    (root / "a.yaml").write_text("broken: [\n")  # saved after the parent loaded
    assert _child_view(root) == {str(root / "a.yaml"): "pipelines: []\n"}
    assert _child_view(tmp_path / "other") is None  # another directory is never pinned
    # The process that made the snapshot always re-reads the files (a test or a reload sees the new text).
    assert snapshot.pinned_texts(root, tmp_path / "home") == {root / "a.yaml": "broken: [\n"}
