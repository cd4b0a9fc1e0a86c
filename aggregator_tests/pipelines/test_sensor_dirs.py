"""File sensors watch only under the uploads root, since uploads are delivered where a sensor watches.

Regression for issue 18 class 8: an editor set `directory: /tmp` (or a directory inside AGGREGATOR_HOME) and
a launcher's upload was written there. Every way of naming a directory outside the root is a spec error
naming file, line and field; symlinks are resolved before the check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.settings import load_settings

SPEC = """pipelines:
  - name: drop
    sensor:
      directory: {directory}
      pattern: "*.csv"
    sources: []
"""


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(specs directory, AGGREGATOR_HOME, uploads root), with a symlink out of the root and one inside it."""
    home = tmp_path / "home"
    root = load_settings({"AGGREGATOR_HOME": str(home)}).uploads_root
    (root / "inbox").mkdir(parents=True)
    (home / "dagster").mkdir()
    (root / "escape").symlink_to(tmp_path)
    (root / "alias").symlink_to(root / "inbox")
    specs = tmp_path / "specs"
    specs.mkdir()
    return specs, home, root


@pytest.mark.parametrize("directory", ["/tmp",  # noqa: S108 - the reported case: a sensor on /tmp
                                       "{home}", "{home}/dagster", "{root}", "../dagster", "inbox/../..",
                                       "escape", "escape/specs", "{root}/escape", ".staging", "inbox/.hidden",
                                       "'~'", "'~/x'"])
def test_directory_outside_the_uploads_root_is_a_spec_error(layout: tuple[Path, Path, Path], directory: str) -> None:
    specs, home, root = layout
    (specs / "drop.yaml").write_text(SPEC.format(directory=directory.format(home=home, root=root)))
    with pytest.raises(SpecErrors) as caught:
        load_specs(specs, uploads_root=root)
    [error] = caught.value.errors
    assert (error.file, error.line, error.field) == (specs / "drop.yaml", 4, "pipelines[0].sensor.directory")
    assert "uploads root" in error.message and "AGGREGATOR_UPLOADS_DIR" in error.message


@pytest.mark.parametrize(("directory", "expected"), [("inbox", "inbox"), ("new/sub", "new/sub"),
                                                     ("{root}/inbox", "inbox"), ("alias", "inbox")])
def test_directory_under_the_root_is_taken_relative_to_it(layout: tuple[Path, Path, Path], directory: str,
                                                          expected: str) -> None:
    specs, _, root = layout
    (specs / "drop.yaml").write_text(SPEC.format(directory=directory.format(root=root)))
    [(pipeline, _, _)] = load_specs(specs, uploads_root=root).pipelines
    assert pipeline.sensor is not None and Path(pipeline.sensor.directory) == root / expected


def test_uploads_dir_setting_moves_the_root(tmp_path: Path) -> None:
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "h"), "AGGREGATOR_UPLOADS_DIR": str(tmp_path / "u")})
    assert settings.uploads_root == (tmp_path / "u").resolve()
    assert load_settings({"AGGREGATOR_HOME": str(tmp_path / "h")}).uploads_root == (tmp_path / "h" / "uploads").resolve()


def test_files_connections_may_read_the_uploads_root_wherever_it_is(tmp_path: Path) -> None:
    """A pipeline reads what its sensor saw arrive: the uploads root is a data root, also when moved."""
    from connectors.egress import data_roots

    moved = {"AGGREGATOR_HOME": str(tmp_path / "h"), "AGGREGATOR_UPLOADS_DIR": str(tmp_path / "u")}
    assert load_settings(moved).uploads_root in data_roots(moved)
    default = {"AGGREGATOR_HOME": str(tmp_path / "h")}
    assert load_settings(default).uploads_root in data_roots(default)
