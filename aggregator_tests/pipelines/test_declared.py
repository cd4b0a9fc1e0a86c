"""What spec files declare and what a write changes, by the loader (the authority for scope decisions)."""

from __future__ import annotations

from pathlib import Path

from aggregator.pipelines.declared import declarations, impact

TEMPLATES = """templates:
  t:
    params: [n]
    pipeline:
      name: "${n}"
      sources:
        - {name: orders, connection: files, stream: {type: file, path: o.csv}}
connections:
  files: {type: files, config: {base_dir: .}}
"""

MINE = """pipelines:
  - name: mine
    sources:
      - {name: orders, connection: files, stream: {type: file, path: o.csv}}
"""


def test_a_template_instance_counts_as_the_pipeline_it_makes(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TEMPLATES)
    (tmp_path / "mine.yaml").write_text(MINE + "  - {use: t, with: {n: other}}\n")
    assert declarations(tmp_path)[tmp_path / "mine.yaml"].pipelines == ("mine", "other")


def test_a_broken_file_still_declares_its_instances(tmp_path: Path) -> None:
    """A file the loader leaves out (here: an unknown key) must not hide the pipelines it would make."""
    (tmp_path / "t.yaml").write_text(TEMPLATES)
    (tmp_path / "mine.yaml").write_text(MINE + "    bogus: 1\n  - {use: t, with: {n: other}}\n")
    assert declarations(tmp_path)[tmp_path / "mine.yaml"].pipelines == ("mine", "other")


def test_impact_of_writes(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TEMPLATES)
    (tmp_path / "mine.yaml").write_text(MINE)
    (tmp_path / "theirs.yaml").write_text("pipelines:\n  - {use: t, with: {n: theirs}}\n")
    same = impact(tmp_path, tmp_path / "mine.yaml", MINE)
    assert (same.pipelines, same.connections, same.reads) == ({"mine"}, set(), {})
    # Editing the template in t.yaml changes `theirs`, declared elsewhere; the connection edit is one too.
    edited = TEMPLATES.replace("path: o.csv", "path: p.csv").replace("base_dir: .", "base_dir: /etc")
    changed = impact(tmp_path, tmp_path / "t.yaml", edited)
    assert changed.pipelines == {"theirs"} and changed.connections == {"files"}
    cross = MINE + "    transforms:\n      - {name: x, sql: \"SELECT * FROM {{ ref('theirs.orders') }}\"}\n"
    assert impact(tmp_path, tmp_path / "mine.yaml", cross).reads == {"mine": {"theirs"}}
    gone = impact(tmp_path, tmp_path / "mine.yaml", None)
    assert gone.pipelines == {"mine"} and gone.connections == set()


def test_a_broken_files_instances_are_reported_as_not_loaded(tmp_path: Path) -> None:
    """platform/spec_errors lists the pipelines a broken file keeps out, template instances included."""
    from aggregator.pipelines.isolate import load_isolated
    from aggregator.settings import load_settings

    (tmp_path / "t.yaml").write_text(TEMPLATES)
    (tmp_path / "mine.yaml").write_text(MINE + "    bogus: 1\n  - {use: t, with: {n: other}}\n")
    loaded = load_isolated(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    assert loaded.dropped == ["mine", "other"]
