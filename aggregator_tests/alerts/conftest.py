"""Real receivers and a spec directory whose pipeline fails or succeeds on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from aggregator.alerts.history import AlertStore, alerts_db_url
from aggregator.pipelines.alert_setup import build_alert_setup
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import Settings, load_settings
from aggregator_tests.alerts.receivers import HttpReceiver, SmtpReceiver, smtp_controller, start_http_receiver
from aggregator_tests.processes import free_port

# Secrets the tests look for in logs and history: each must only ever travel to its receiver.
HOOK_TOKEN = "hook-token-5f1c"
HOOK_SECRET = "hmac-key-9a7e"
SLACK_TOKEN = "XXslackSECRETtoken42"
SMTP_PASSWORD = "smtp-pass-33b0"
SECRETS = (HOOK_TOKEN, HOOK_SECRET, SLACK_TOKEN, SMTP_PASSWORD)

ALERTS_YAML = """
alerts:
  ui_url: http://dagster.example:3000
  delivery: {{attempts: 3, backoff_seconds: 0.01}}
  channels:
    hook:
      type: webhook
      url: {{env: TEST_HOOK_URL}}
      secret: {{env: TEST_HOOK_SECRET}}
    chat:
      type: slack
      url: {{env: TEST_SLACK_URL}}
    mail:
      type: email
      host: 127.0.0.1
      port: {smtp_port}
      username: alerts
      password: {{env: TEST_SMTP_PASSWORD}}
      sender: aggregator@example.com
      to: [data-team@example.com]
      ca_file: {ca_file}
  rules:
    - {{when: run_failure, channels: [hook, chat, mail]}}
    - {{when: check_failure, channels: [hook]}}
    - {{when: spec_error, channels: [hook]}}
    - {{when: freshness, channels: [hook]}}
"""

SHOP_YAML = """
connections:
  files: {type: files, config: {base_dir: data}}
pipelines:
  - name: shop
    sources:
      - name: orders
        connection: files
        stream: {type: file, path: orders.csv}
        freshness: 26h
        checks:
          - {type: row_count, min: 2}
"""



@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver, thread = start_http_receiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join()


@pytest.fixture
def smtp_receiver(tmp_path: Path) -> Iterator[SmtpReceiver]:
    port = free_port()
    controller, receiver = smtp_controller(tmp_path, "alerts", SMTP_PASSWORD)
    controller.port = port
    receiver.port = port
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


@dataclass
class Platform:
    """A spec directory, its settings and a real Dagster instance."""

    spec_dir: Path
    settings: Settings
    instance: dg.DagsterInstance

    @property
    def orders(self) -> Path:
        return self.spec_dir / "data" / "orders.csv"

    def write_orders(self, rows: int) -> None:
        self.orders.write_text("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(1, rows + 1)))

    def defs(self) -> dg.Definitions:
        from aggregator.alerts.definitions import alert_sensors

        specs = load_specs(self.spec_dir)
        sensors, errors = alert_sensors(specs, self.settings)
        assert not errors, errors
        return dg.Definitions.merge(build_definitions(specs, self.settings), dg.Definitions(sensors=sensors))

    def setup(self):
        return build_alert_setup(load_specs(self.spec_dir))

    def run(self, defs: dg.Definitions) -> dg.ExecuteInProcessResult:
        job = defs.resolve_job_def("shop_job")
        return job.execute_in_process(instance=self.instance, raise_on_error=False)

    def store(self) -> AlertStore:
        return AlertStore(alerts_db_url(self.settings.home))


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_receiver: HttpReceiver,
             smtp_receiver: SmtpReceiver) -> Iterator[Platform]:
    spec_dir = tmp_path / "specs"
    (spec_dir / "data").mkdir(parents=True)
    (spec_dir / "alerts.yaml").write_text(ALERTS_YAML.format(smtp_port=smtp_receiver.port,
                                                             ca_file=smtp_receiver.ca_file))
    (spec_dir / "shop.yaml").write_text(SHOP_YAML)
    monkeypatch.setenv("TEST_HOOK_URL", f"{http_receiver.base_url}/hook?token={HOOK_TOKEN}")
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)
    monkeypatch.setenv("TEST_SLACK_URL", f"{http_receiver.base_url}/services/T000/B000/{SLACK_TOKEN}")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_PIPELINES": str(spec_dir),
                              "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}"})
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        p = Platform(spec_dir, settings, instance)
        p.write_orders(3)
        yield p
