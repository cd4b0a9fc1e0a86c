"""docs/operations.md: its YAML examples load (alerts through the spec loader, python_logs through Dagster's
instance config), its error example is what validation prints, and its metric table matches /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.scheduler import DagsterDaemonScheduler
from prometheus_client.parser import text_string_to_metric_families

from aggregator.metrics.exposition import Exposition
from aggregator.pipelines.alert_setup import build_alert_setup
from aggregator.pipelines.load import SpecErrors, load_specs

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
TEXT = DOC.read_text()
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", TEXT, re.DOTALL)
ALERTS, PIPELINE, PYTHON_LOGS, SCHEDULER = YAML_BLOCKS


def write_specs(tmp_path: Path, pipeline: str = PIPELINE) -> Path:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "alerts.yaml").write_text(ALERTS)
    (tmp_path / "specs" / "shop.yaml").write_text(pipeline)
    return tmp_path / "specs"


def test_alert_examples_load_together(tmp_path: Path) -> None:
    setup = build_alert_setup(load_specs(write_specs(tmp_path)))
    assert set(setup.config.channels) == {"ops-hook", "data-slack", "data-mail"}
    assert [r.when for r in setup.rules_for("check_failure", "shop", "ERROR")] == ["check_failure"] * 2
    assert setup.rules_for("run_success", "shop")[0].channels == ["data-slack"]
    assert setup.freshness["shop/orders"][1].total_seconds() == 26 * 3600


def test_error_example_is_what_validation_prints(tmp_path: Path) -> None:
    expected = re.search(r"```text\n(.*?)\n```", TEXT, re.DOTALL)
    assert expected
    # the example's rule with a second, unknown channel, on the line the example names
    broken = PIPELINE.replace("{when: check_failure, severity: ERROR, channels: [ops-hook], recovery: false}",
                              "when: check_failure\n          channels:\n            - ops-hook\n            - pager")
    specs = write_specs(tmp_path, broken)
    try:
        build_alert_setup(load_specs(specs))
    except SpecErrors as exc:
        message = str(exc.errors[0]).replace(str(specs), "specs")
    else:
        raise AssertionError("an unknown channel must be an error")
    assert message == expected.group(1)


def test_python_logs_example_is_valid_instance_config(tmp_path: Path) -> None:
    config = yaml.safe_load(PYTHON_LOGS)
    with dg.instance_for_test(overrides=config, temp_dir=str(tmp_path)) as instance:
        handlers = instance.get_handlers()
    assert any(type(h.formatter).__name__ == "RunJsonFormatter" for h in handlers)


def test_metric_table_matches_the_exposition() -> None:
    documented = set(re.findall(r"^\| `(aggregator_[a-z_]+)` \|", TEXT, re.MULTILINE))
    with dg.instance_for_test() as instance:
        body = Exposition(instance).render().decode()
    exposed = set()
    for family in text_string_to_metric_families(body):
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    assert documented == exposed


def test_documented_catch_up_policy_is_the_shipped_one(tmp_path: Path) -> None:
    """Issue 20.3: missed ticks follow a documented policy; the page shows what the instance files set."""
    documented = yaml.safe_load(SCHEDULER)
    root = DOC.parents[1]
    for shipped in ("dagster.yaml", "aggregator/dagster.yaml", "deploy/dagster.yaml"):
        text = (root / shipped).read_text()
        assert yaml.safe_load(text)["scheduler"] == documented["scheduler"], shipped
        # Merges twice left a block repeated; YAML silently keeps the last one, a reader sees two.
        assert not _duplicate_keys(yaml.compose(text)), (shipped, _duplicate_keys(yaml.compose(text)))
    with dg.instance_for_test(overrides=documented, temp_dir=str(tmp_path)) as instance:
        scheduler = instance.scheduler
        assert isinstance(scheduler, DagsterDaemonScheduler), scheduler
        assert (scheduler.max_catchup_runs, scheduler.max_tick_retries) == (5, 3)


def _duplicate_keys(node: yaml.Node | None) -> list[str]:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        return sorted({k for k in keys if keys.count(k) > 1}) + [d for _, v in node.value for d in _duplicate_keys(v)]
    if isinstance(node, yaml.SequenceNode):
        return [d for item in node.value for d in _duplicate_keys(item)]
    return []
