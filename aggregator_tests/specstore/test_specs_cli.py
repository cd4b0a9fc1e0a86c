"""`aggregator specs apply DIR [--dry-run]` and `specs export DIR`: the GitOps path into the spec store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.settings import EXAMPLE_PIPELINES_DIR, load_settings
from aggregator.specstore.current import open_spec_db
from aggregator_tests.postgres import PgDatabase


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGREGATOR_PIPELINES", raising=False)
    monkeypatch.delenv("AGGREGATOR_SPECS_DB_URL", raising=False)
    monkeypatch.delenv("AGGREGATOR_PROXY_DB_URL", raising=False)
    monkeypatch.setenv("AGGREGATOR_SPECS_USER", "ci-bot")
    target = tmp_path / "specs"
    shutil.copytree(EXAMPLE_PIPELINES_DIR, target)
    return target


def test_apply_is_validated_diffed_idempotent_and_recorded(specs: Path) -> None:
    runner = CliRunner()
    db = open_spec_db(load_settings())
    dry = runner.invoke(main, ["specs", "apply", str(specs), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+++ b/sales.yaml" in dry.output and db.head() == 0
    first = runner.invoke(main, ["specs", "apply", str(specs)])
    assert first.exit_code == 0 and "revision 1" in first.output, first.output
    again = runner.invoke(main, ["specs", "apply", str(specs)])
    assert again.exit_code == 0 and "no changes" in again.output and db.head() == 1
    (specs / "shop.yaml").unlink()
    (specs / "sales.yaml").write_text((specs / "sales.yaml").read_text().replace("Sample pipeline", "Our pipeline"))
    changed = runner.invoke(main, ["specs", "apply", str(specs)])
    assert changed.exit_code == 0, changed.output
    assert "-# Sample pipeline" in changed.output and "+# Our pipeline" in changed.output
    assert "--- a/shop.yaml" in changed.output and "+++ /dev/null" in changed.output
    assert set(db.snapshot().files) == {"sales.yaml"}
    revision = db.revision(db.head())
    assert revision is not None and revision.username == "ci-bot" and revision.action == "apply"
    out = specs.parent / "exported"
    exported = runner.invoke(main, ["specs", "export", str(out)])
    assert exported.exit_code == 0 and (out / "sales.yaml").read_text() == (specs / "sales.yaml").read_text()


def test_apply_refuses_a_directory_that_does_not_validate(specs: Path) -> None:
    (specs / "broken.yaml").write_text("pipelines:\n  - name: Bad-Name\n")
    result = CliRunner().invoke(main, ["specs", "apply", str(specs)])
    assert result.exit_code != 0 and "broken.yaml:2" in result.output and "nothing was applied" in result.output
    assert open_spec_db(load_settings()).head() == 0


def test_grant_read_is_refused_before_anything_is_stored(specs: Path) -> None:
    """A read-only role is a PostgreSQL role: a name that is not one, or a SQLite store (which any process that
    opens the file can write), fails the apply before it stores a revision, saying why."""
    runner = CliRunner()
    bad = runner.invoke(main, ["specs", "apply", str(specs), "--grant-read", 'x"; DROP TABLE t; --'])
    assert bad.exit_code != 0 and "is not a plain PostgreSQL role name" in bad.output, bad.output
    sqlite = runner.invoke(main, ["specs", "apply", str(specs), "--grant-read", "aggregator_specs_reader"])
    assert sqlite.exit_code != 0 and "needs the spec store on PostgreSQL, not sqlite" in sqlite.output
    assert open_spec_db(load_settings()).head() == 0


def test_grant_read_names_a_missing_role(specs: Path, pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against PostgreSQL: the store is applied, then a role that does not exist is named with the fix, and the
    command fails (a deploy job must not pass with readers that cannot read)."""
    monkeypatch.setenv("AGGREGATOR_SPECS_DB_URL", pg_db.sqlalchemy_url)
    result = CliRunner().invoke(main, ["specs", "grant-read", "no_such_role_for_specs"])
    assert result.exit_code != 0, result.output
    assert "could not let role 'no_such_role_for_specs' read the spec store" in result.output
    assert "create the role first" in result.output
