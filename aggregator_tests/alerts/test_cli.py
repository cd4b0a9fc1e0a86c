"""`aggregator alerts test|list` against the real receivers and the real history table."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aggregator.cli import main
from aggregator_tests.alerts.conftest import SECRETS, Platform
from aggregator_tests.alerts.receivers import HttpReceiver, SmtpReceiver


@pytest.fixture
def cli_env(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    monkeypatch.setenv("AGGREGATOR_HOME", str(platform.settings.home))
    monkeypatch.setenv("AGGREGATOR_PIPELINES", str(platform.spec_dir))
    monkeypatch.delenv("AGGREGATOR_PLATFORM_DB_URL", raising=False)
    return platform


def test_alerts_test_sends_through_each_channel_and_list_shows_it(
    cli_env: Platform, http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver,
) -> None:
    runner = CliRunner()
    for channel in ("hook", "chat", "mail"):
        result = runner.invoke(main, ["alerts", "test", channel])
        assert result.exit_code == 0, result.output
        assert f"channel {channel}: delivered" in result.output
    assert len(http_receiver.requests) == 2 and len(smtp_receiver.messages) == 1
    mail = smtp_receiver.messages[0].content
    assert "Subject: [test] TEST: alert channel mail works" in mail and "nothing failed" in mail
    hook = next(r for r in http_receiver.requests if r.path.startswith("/hook"))
    assert hook.json()["kind"] == "test" and hook.json()["title"] == "TEST: alert channel hook works"
    listed = runner.invoke(main, ["alerts", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert len(lines) == 3 and all(" sent " in line and " test " in line for line in lines)


def test_alerts_test_reports_failure_without_leaking_the_url(
    cli_env: Platform, http_receiver: HttpReceiver,
) -> None:
    http_receiver.status = 500
    result = CliRunner().invoke(main, ["alerts", "test", "chat"])
    assert result.exit_code == 1
    assert "not delivered after 3 attempt(s)" in result.output and "HTTP 500" in result.output
    listed = CliRunner().invoke(main, ["alerts", "list", "--status", "failed"])
    assert " failed " in listed.output
    for secret in SECRETS:
        assert secret not in result.output and secret not in listed.output


def test_alerts_test_unknown_channel_names_the_declared_ones(cli_env: Platform) -> None:
    result = CliRunner().invoke(main, ["alerts", "test", "pager"])
    assert result.exit_code == 1
    assert "unknown channel 'pager'; declared under alerts.channels: chat, hook, mail" in result.output
