"""`aggregator validate` on a corpus of bad specs: each error names the file, the line and the field."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.pipelines.validate import validate
from aggregator.settings import EXAMPLE_PIPELINES_DIR, load_settings

BAD = Path(__file__).parent / "bad_specs"
EXPECT = re.compile(r'^# expect: line=(?P<line>\d+) field=(?P<field>\S*) message="(?P<message>.+)"$')


def _expectation(path: Path) -> dict[str, str]:
    match = EXPECT.match(path.read_text().splitlines()[0])
    assert match, f"{path.name} lacks an '# expect:' header"
    return match.groupdict()


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_spec_is_located(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGG_TEST_UNSET_VARIABLE", raising=False)
    spec = tmp_path / path.name
    shutil.copyfile(path, spec)
    expected = _expectation(path)
    # As the CLI validates: in the pipelines' environment, so unset variables are reported too.
    report = validate(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}), os.environ)
    assert not report.ok
    first = report.errors[0]
    assert (first.file, first.line, first.field) == (spec, int(expected["line"]), expected["field"]), str(first)
    assert expected["message"] in first.message
    # The rendered message carries all three, as the CLI prints it.
    assert str(first).startswith(f"{spec}:{expected['line']}: ")


def test_missing_env_var_is_named_but_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conn.yaml").write_text(
        "connections:\n  shop:\n    type: sql\n    config:\n      url: {env: AGG_SECRET_URL}\n"
        "  other:\n    type: sql\n    config:\n      url: {env: AGG_PRESENT_URL}\n"
    )
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(tmp_path))
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AGG_PRESENT_URL", "postgresql://user:hunter2@db/x")
    monkeypatch.delenv("AGG_SECRET_URL", raising=False)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    assert "environment variable AGG_SECRET_URL is not set" in result.output
    assert "hunter2" not in result.output
    assert "AGG_PRESENT_URL" not in result.output


def test_every_error_in_a_directory_is_reported_together(tmp_path: Path) -> None:
    for name in ("bad_cron.yaml", "unknown_key.yaml", "bad_name.yaml"):
        shutil.copyfile(BAD / name, tmp_path / name)
    report = validate(tmp_path, load_settings({"AGGREGATOR_HOME": str(tmp_path / "home")}))
    assert {e.file.name for e in report.errors} == {"bad_cron.yaml", "unknown_key.yaml", "bad_name.yaml"}


def test_bundled_samples_validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path))
    monkeypatch.delenv("AGGREGATOR_PIPELINES", raising=False)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output
    assert validate(EXAMPLE_PIPELINES_DIR, load_settings({"AGGREGATOR_HOME": str(tmp_path)})).ok


def test_a_broken_spec_fails_the_code_location_with_the_located_message(tmp_path: Path) -> None:
    from aggregator.pipelines.compile import build_definitions
    from aggregator.pipelines.load import SpecErrors, load_specs

    shutil.copyfile(BAD / "bad_cron.yaml", tmp_path / "bad_cron.yaml")
    with pytest.raises(SpecErrors) as info:
        build_definitions(load_specs(tmp_path), load_settings({"AGGREGATOR_HOME": str(tmp_path)}))
    assert f"{tmp_path / 'bad_cron.yaml'}:5: pipelines[0].schedule.cron:" in str(info.value)
