"""`aggregator users|tokens|audit` against the proxy database under AGGREGATOR_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator.proxy.server import open_store


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path))
    monkeypatch.delenv("AGGREGATOR_PROXY_DB_URL", raising=False)
    return CliRunner()


def test_users_tokens_and_audit_from_the_cli(runner: CliRunner, tmp_path: Path) -> None:
    pw = "a long enough password\n"
    added = runner.invoke(main, ["users", "add", "ana", "--role", "launcher", "--scope", "finance"], input=pw * 2)
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["users", "list"]).output
    assert "ana\tlauncher\tscope=finance\tenabled" in listed
    assert runner.invoke(main, ["users", "add", "ana", "--role", "viewer"], input=pw * 2).exit_code != 0

    created = runner.invoke(main, ["tokens", "create", "--user", "ana", "--expires", "90d"])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    store, audit = open_store(f"sqlite:///{tmp_path / 'proxy.db'}")
    principal = store.token_principal(secret)
    assert principal is not None and principal.user == "ana"
    token_id = principal.token_id
    assert secret not in runner.invoke(main, ["tokens", "list"]).output  # only ids, never secrets
    assert runner.invoke(main, ["tokens", "create", "--user", "ana", "--role", "admin"]).exit_code != 0

    assert runner.invoke(main, ["tokens", "revoke", str(token_id)]).exit_code == 0
    store.clear_cache()
    assert store.token_principal(secret) is None
    assert "revoked" in runner.invoke(main, ["tokens", "list"]).output

    assert runner.invoke(main, ["users", "set-role", "ana", "editor"]).exit_code == 0
    assert runner.invoke(main, ["users", "disable", "ana"]).exit_code == 0
    assert "ana\teditor\tscope=*\tdisabled" in runner.invoke(main, ["users", "list"]).output
    assert runner.invoke(main, ["users", "disable", "bob"]).exit_code != 0

    from aggregator.proxy.storage.audit import AuditRecord

    audit.record(AuditRecord(event="mutation", username="ana", decision="deny", operation="mutation:wipeAssets"))
    lines = runner.invoke(main, ["audit", "--user", "ana", "--decision", "deny", "--json"]).output.strip().splitlines()
    assert [json.loads(line)["operation"] for line in lines] == ["mutation:wipeAssets"]


def test_proxy_cli_papercuts(runner: CliRunner, tmp_path: Path) -> None:
    """Issue 11 item 10: password from stdin or generated and printed once; the README's `tokens create
    --user X` explains a missing owner; an unknown --scope warns with the known pipelines; `tokens list`
    says when it is empty; `audit` prints ISO times (JSON with --json)."""
    empty = runner.invoke(main, ["tokens", "list"])
    assert empty.exit_code == 0 and "no tokens" in empty.stderr
    no_records = runner.invoke(main, ["audit", "--decision", "deny"])
    assert no_records.exit_code == 0 and "no audit records match" in no_records.stderr
    assert runner.invoke(main, ["audit", "--decision", "deny", "--json"]).stdout == ""

    missing = runner.invoke(main, ["tokens", "create", "--user", "ci", "--role", "launcher", "--expires", "90d"])
    assert missing.exit_code != 0 and "aggregator users add ci" in missing.output

    generated = runner.invoke(main, ["users", "add", "ci", "--role", "launcher", "--generate-password",
                                     "--scope", "no_such_pipeline"])
    assert generated.exit_code == 0, generated.output
    password = generated.stdout.strip()
    assert "no pipeline named no_such_pipeline; known pipelines:" in generated.stderr
    store, _ = open_store(f"sqlite:///{tmp_path / 'proxy.db'}")
    assert store.verify_password("ci", password) is not None

    piped = runner.invoke(main, ["users", "add", "bo", "--role", "viewer", "--password-stdin"],
                          input="piped password 123\n")
    assert piped.exit_code == 0, piped.output
    assert store.verify_password("bo", "piped password 123") is not None
    assert runner.invoke(main, ["tokens", "create", "--user", "ci", "--expires", "90d"]).exit_code == 0

    from aggregator.proxy.storage.audit import AuditRecord

    _, audit = open_store(f"sqlite:///{tmp_path / 'proxy.db'}")
    audit.record(AuditRecord(event="mutation", username="ci", decision="allow", operation="mutation:launchRun",
                             run_id="r1", ts=0))
    line = runner.invoke(main, ["audit", "--limit", "1"]).stdout.strip()
    assert line.split("\t")[:4] == ["1970-01-01T00:00:00+00:00", "allow", "mutation", "ci"]
    assert "run=r1" in line


def test_users_add_without_a_terminal_says_how_to_give_the_password(tmp_path: Path) -> None:
    """Newcomer review item 15: `users add` run from a script printed a GetPassWarning and "Aborted!" only."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "AGGREGATOR_HOME": str(tmp_path), "AGGREGATOR_PROXY_DB_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    done = subprocess.run([sys.executable, "-m", "aggregator.cli", "users", "add", "ana", "--role", "viewer"],
                          check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 2, done
    assert "--password-stdin" in done.stderr and "--generate-password" in done.stderr, done.stderr
    assert "GetPassWarning" not in done.stderr and "Aborted!" not in done.stderr, done.stderr


def test_cli_keeps_an_unscoped_admin_and_enables_again(runner: CliRunner) -> None:
    """The CLI and the API share the store's guard: the last enabled unscoped admin cannot be demoted,
    scoped or disabled from either; once another unscoped admin exists, it can."""
    pw = "a long enough password\n"
    assert runner.invoke(main, ["users", "add", "root", "--role", "admin"], input=pw * 2).exit_code == 0
    for args in (["set-role", "root", "editor"], ["set-role", "root", "admin", "--scope", "sales"],
                 ["disable", "root"]):
        refused = runner.invoke(main, ["users", *args])
        assert refused.exit_code != 0 and "last enabled admin" in refused.output, refused.output
    assert "root\tadmin\tscope=*\tenabled" in runner.invoke(main, ["users", "list"]).output
    assert runner.invoke(main, ["users", "add", "ops", "--role", "admin"], input=pw * 2).exit_code == 0
    assert runner.invoke(main, ["users", "disable", "root"]).exit_code == 0
    assert runner.invoke(main, ["users", "enable", "root"]).exit_code == 0
    assert "root\tadmin\tscope=*\tenabled" in runner.invoke(main, ["users", "list"]).output
