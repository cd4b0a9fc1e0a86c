"""JSON log lines: the CLI/proxy formatter carries the correlation id; inside a run every line carries the
run id and the request id from the run's tags."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import yaml

from aggregator.logs.json_format import JsonFormatter, configure_logging, correlated
from aggregator.logs.run_logger import REQUEST_ID_TAG
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.alerts.conftest import SHOP_YAML

REPO = Path(__file__).resolve().parents[2]


def test_formatter_adds_correlation_id_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("aggregator.test.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        with correlated("req-42"):
            log.info("decision %s", "allow", extra={"user": "ana", "operation": "launch"})
        log.warning("outside")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "decision allow" and first["correlation_id"] == "req-42"
    assert first["user"] == "ana" and first["operation"] == "launch" and first["level"] == "INFO"
    assert "correlation_id" not in second


def test_configure_logging_only_when_asked() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert not configure_logging({"AGGREGATOR_LOG_FORMAT": "text"})
        stream = io.StringIO()
        assert configure_logging({"AGGREGATOR_LOG_FORMAT": "json"}, stream=stream)
        logging.getLogger("aggregator.cli").info("hello")
        assert json.loads(stream.getvalue())["message"] == "hello"
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


# The instance configs a deployment runs with (docs/operations.md shows the same block): their python_logs
# setting itself is exercised, not a copy of it.
DEPLOY_CONFIGS = [REPO / "deploy" / "dagster.yaml", REPO / "deploy" / "dagster.k8s.yaml"]


@pytest.mark.parametrize("config", DEPLOY_CONFIGS, ids=lambda p: p.name)
def test_every_run_log_line_carries_run_and_request_id(
    config: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    run_json_logs = yaml.safe_load(config.read_text())["python_logs"]
    specs_dir = tmp_path / "specs"
    (specs_dir / "data").mkdir(parents=True)
    (specs_dir / "shop.yaml").write_text(SHOP_YAML)
    (specs_dir / "data" / "orders.csv").write_text("id,amount\n1,1.5\n2,3\n")
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"),
                              "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wh.db'}"})
    defs = build_definitions(load_specs(specs_dir), settings)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster"), overrides={"python_logs": run_json_logs}) as instance:
        capfd.readouterr()
        result = defs.resolve_job_def("shop_job").execute_in_process(
            instance=instance, tags={REQUEST_ID_TAG: "req-7f3a"},
        )
    assert result.success
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    assert len(lines) > 5
    assert all(line["run_id"] == result.run_id and line["correlation_id"] == "req-7f3a" for line in lines)
    assert any(line["message"] == 'Finished execution of run for "shop_job".' for line in lines)
    assert any(line.get("event_type") == "RUN_SUCCESS" for line in lines)
    assert any("wrote 2 into shop_orders" in line["message"] for line in lines), [l["message"] for l in lines]
