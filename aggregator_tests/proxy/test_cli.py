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

    from aggregator.proxy.audit import AuditRecord

    audit.record(AuditRecord(event="mutation", username="ana", decision="deny", operation="mutation:wipeAssets"))
    lines = runner.invoke(main, ["audit", "--user", "ana", "--decision", "deny"]).output.strip().splitlines()
    assert [json.loads(line)["operation"] for line in lines] == ["mutation:wipeAssets"]
