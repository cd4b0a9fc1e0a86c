"""docs/alerts.md: its YAML loads through the spec loader, its error line is what validation prints, its API body
is a block the API would store, its test payload is what a test sends, and its tables match the models."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aggregator.alerts.deliver import channel_test_message
from aggregator.pipelines.alert_setup import build_alert_setup
from aggregator.pipelines.alerts_spec import EmailChannel, SlackChannel, WebhookChannel
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.proxy.api.alert_config_routes import content_of
from aggregator.proxy.api.secrets_check import file_secrets
from aggregator.proxy.api.state import ApiLimits

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
TEXT = DOC.read_text()
[BLOCK] = re.findall(r"```yaml\n(.*?)```", TEXT, re.DOTALL)
[ERROR] = re.findall(r"```text\n(.*?)\n```", TEXT, re.DOTALL)
PUT_BODY, TEST_PAYLOAD = (json.loads(b) for b in re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL))


def _specs(tmp_path: Path, alerts_yaml: str) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir(exist_ok=True)
    (specs / "alerts.yaml").write_text(alerts_yaml)
    return specs


def test_channel_example_loads_and_holds_no_inline_secret(tmp_path: Path) -> None:
    config = build_alert_setup(load_specs(_specs(tmp_path, BLOCK))).config
    assert set(config.channels) == {"ops-hook", "status-page", "data-slack", "data-mail"}
    assert [r.when for r in config.rules] == ["run_failure", "check_failure", "spec_error"]
    assert file_secrets(BLOCK) == []


def test_error_example_is_what_validation_prints(tmp_path: Path) -> None:
    broken = BLOCK.replace("{when: check_failure, severity: WARN, channels: [data-slack]}",
                           "{when: check_failure, severity: WARN, channels: [pager]}")
    specs = _specs(tmp_path, broken)
    try:
        build_alert_setup(load_specs(specs))
    except SpecErrors as exc:
        message = str(exc.errors[0]).replace(f"{specs}/", "")
    else:
        raise AssertionError("an unknown channel must be an error")
    assert message == ERROR


def test_api_body_example_is_a_block_the_api_stores(tmp_path: Path) -> None:
    content = content_of(PUT_BODY["alerts"])
    assert file_secrets(content) == []
    config = build_alert_setup(load_specs(_specs(tmp_path, content))).config
    assert set(config.channels) == {"data-slack", "data-mail"}
    assert config.rules[1].pipelines == ["sales"]


def test_test_payload_example_is_what_a_test_sends() -> None:
    assert channel_test_message("ops-hook", "https://dagster.example.com", "ana").payload() == TEST_PAYLOAD


def test_channel_table_names_every_field() -> None:
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", TEXT, re.MULTILINE))
    for model in (WebhookChannel, SlackChannel, EmailChannel):
        documented = set(re.findall(r"`(\w+)`", rows[model.model_fields["type"].default]))
        assert documented == set(model.model_fields) - {"type"}, model.__name__


def test_documented_rate_limit_is_the_default() -> None:
    found = re.search(r"`AGGREGATOR_API_ALERT_TESTS_PER_MINUTE` \(default (\d+)\)", TEXT)
    assert found and int(found.group(1)) == ApiLimits().alert_tests_per_minute
