"""deploy/grafana and deploy/prometheus: valid files, PromQL that parses, and every metric they use exists
on /metrics (read from the real exposition, so renaming a metric fails here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aggregator.metrics.exposition import Exposition
from aggregator_tests.deploy.compose import compose_command
from aggregator_tests.deploy.paths import DEPLOY
from aggregator_tests.deploy.test_compose import filled_env_file
from aggregator_tests.tools import needs_tool

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "aggregator.json"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
# Series Prometheus itself makes, not the platform.
BUILTIN = {"up"}

DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "panels", "schemaVersion"],
    "properties": {
        "uid": {"type": "string", "minLength": 1},
        "panels": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "title", "type", "gridPos", "targets", "datasource"],
                "properties": {
                    "type": {"enum": ["timeseries", "stat", "table", "gauge", "bargauge"]},
                    "gridPos": {"type": "object", "required": ["x", "y", "w", "h"],
                                "properties": {k: {"type": "integer", "minimum": 0} for k in "xywh"}},
                    "datasource": {"const": {"type": "prometheus", "uid": "aggregator-prometheus"}},
                    "targets": {"type": "array", "minItems": 1,
                                "items": {"type": "object", "required": ["refId", "expr"]}},
                },
            },
        },
    },
}


def metric_names(expr: str) -> set[str]:
    """Every metric name selected in `expr`; raises if it does not parse."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            return
        if isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
            return
        for attr in ("expr", "lhs", "rhs", "param"):
            child = getattr(node, attr, None)
            if isinstance(child, promql_parser.Expr):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return names


def grafana_expr(expr: str) -> str:
    """Grafana variables replaced by what Grafana substitutes, so the result is plain PromQL."""
    return expr.replace("$pipeline", ".*")


@pytest.fixture(scope="module")
def exposed() -> set[str]:
    """Sample names /metrics can carry, from the real exposition's families and types."""
    with dg.instance_for_test() as instance:
        body = Exposition(instance).render().decode()
    names = set()
    for family in text_string_to_metric_families(body):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def dashboard_exprs() -> Iterator[str]:
    data = json.loads(DASHBOARD.read_text())
    for panel in data["panels"]:
        for target in panel["targets"]:
            yield grafana_expr(target["expr"])
    for var in data["templating"]["list"]:
        query = var["query"]["query"]
        if query.startswith("label_values("):
            yield query.removeprefix("label_values(").split(",")[0]


def test_dashboard_is_valid_and_uses_only_exposed_metrics(exposed: set[str]) -> None:
    data = json.loads(DASHBOARD.read_text())
    jsonschema.validate(data, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert used - BUILTIN <= exposed, f"not on /metrics: {sorted(used - BUILTIN - exposed)}"
    titles = " ".join(p["title"].lower() for p in data["panels"])
    for topic in ("runs", "failed", "duration", "rows loaded", "last load", "proxy"):
        assert topic in titles


def test_count_panels_show_zero_rather_than_no_data() -> None:
    """Regression (issue 19, minor 7): "Failed runs (24h)" showed "No data" when nothing had failed, because an
    increase over series that do not exist is empty. Every stat panel (a single number) falls back to 0."""
    data = json.loads(DASHBOARD.read_text())
    stats = [p for p in data["panels"] if p["type"] == "stat"]
    assert "Failed runs (24h)" in {p["title"] for p in stats}
    for panel in stats:
        for target in panel["targets"]:
            assert re.search(r"\bor\s+vector\(0\)\s*$", target["expr"]), f"{panel['title']}: add `or vector(0)`"


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_alert_rules_parse_and_use_only_exposed_metrics(path: Path, exposed: set[str]) -> None:
    data = yaml.safe_load(path.read_text())
    assert data["groups"]
    for group in data["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for rule in group["rules"]:
            assert {"alert", "expr"} <= set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            used = metric_names(rule["expr"])
            assert used - BUILTIN <= exposed, f"{rule['alert']}: not on /metrics: {sorted(used - BUILTIN - exposed)}"
            if "for" in rule:
                assert str(rule["for"])[-1] in "smhdw" and str(rule["for"])[:-1].isdigit()


def test_scrape_config_points_at_the_monitoring_services(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"aggregator-metrics": ["metrics:9464"], "aggregator-proxy": ["proxy:3000"]}

    prefix, extra_env = compose_command(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "AGGREGATOR_", "COMPOSE_"))}
    env.update(extra_env)
    result = subprocess.run(
        [*prefix, "-f", str(DEPLOY / "docker-compose.yml"), "--env-file", str(filled_env_file(tmp_path)),
         "--profile", "monitoring", "config", "--format", "json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"metrics", "prometheus", "grafana"} <= set(services)
    assert services["metrics"]["command"][-5:] == ["serve", "--host", "0.0.0.0", "--port", "9464"]  # noqa: S104 (the container's address; only the compose network reaches it)
    assert "ports" not in services["metrics"] and "ports" not in services["prometheus"]
    mounts = {v["target"]: Path(v["source"]) for s in ("prometheus", "grafana") for v in services[s]["volumes"]
              if v["type"] == "bind"}
    assert mounts["/etc/prometheus"] == DEPLOY / "prometheus"
    assert (mounts["/var/lib/grafana/dashboards"] / "aggregator.json").is_file()
    assert (mounts["/etc/grafana/provisioning"] / "datasources" / "prometheus.yml").is_file()


PROMTOOL = shutil.which("promtool")
needs_promtool = needs_tool(PROMTOOL, "needs promtool (apt-get install prometheus; .ci/run does)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_shipped_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """Regression (issue 19, minor 6): `promtool check config` failed on the shipped config (its token file was an
    absolute path nobody creates). The token file is now relative to the config (secrets/proxy_token, git-ignored):
    the config passes as shipped (syntax: the token is a runtime secret) and fully with the operator's token."""
    shipped = promtool("check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    copy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY / "prometheus", copy)
    (copy / "secrets").mkdir(exist_ok=True)
    (copy / "secrets" / "proxy_token").write_text("operator-api-token\n")
    full = promtool("check", "config", str(copy / "prometheus.yml"))
    assert full.returncode == 0, full.stdout + full.stderr
    assert "SUCCESS" in full.stdout and "rules found" in full.stdout
    (copy / "secrets" / "proxy_token").unlink()
    missing = promtool("check", "config", str(copy / "prometheus.yml"))
    assert missing.returncode != 0 and "proxy_token" in missing.stdout + missing.stderr, "the check has teeth"


@needs_promtool
def test_kubernetes_prometheus_config_passes_promtool(helm: Path, tmp_path: Path) -> None:
    """Regression (issue 19, major 8): nothing deployed metrics or a scrape config on Kubernetes. The chart runs
    `aggregator metrics serve` and ships a Prometheus configuration for it and the proxy, with the same rules."""
    from aggregator_tests.deploy.helm import CHART, render

    objects = render(helm, tmp_path / "helm")
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "aggregator-prometheus"]
    assert config["data"]["aggregator-rules.yml"] == (DEPLOY / "prometheus" / "rules" / "aggregator.yml").read_text()
    assert (CHART / "files" / "prometheus-rules.yml").read_text() == config["data"]["aggregator-rules.yml"]
    directory = tmp_path / "prometheus"
    directory.mkdir()
    token = directory / "token"
    token.write_text("operator-api-token\n")
    text = config["data"]["prometheus.yml"]
    parsed = yaml.safe_load(text)
    token_path = parsed["scrape_configs"][1]["authorization"]["credentials_file"]
    (directory / "prometheus.yml").write_text(text.replace(token_path, str(token)))
    (directory / "aggregator-rules.yml").write_text(config["data"]["aggregator-rules.yml"])
    result = promtool("check", "config", str(directory / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in parsed["scrape_configs"]}
    (service,) = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "aggregator-metrics"]
    assert targets["aggregator-metrics"] == [f"aggregator-metrics.dagster.svc:{service['spec']['ports'][0]['port']}"]
    assert targets["aggregator-proxy"] == ["aggregator-proxy.dagster.svc:80"]
    (deployment,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "aggregator-metrics"]
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["aggregator", "metrics", "serve"]


def test_prometheus_may_scrape_metrics_and_proxy(helm: Path, tmp_path: Path) -> None:
    from aggregator_tests.deploy.helm import render
    from aggregator_tests.deploy.test_network_policies import Endpoint, allowed

    objects = render(helm, tmp_path / "helm")
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]

    def pod(name: str, ip: str) -> Endpoint:
        (d,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
        return Endpoint(name, d["spec"]["template"]["metadata"]["labels"], ip)

    prometheus = Endpoint("prometheus", {"app.kubernetes.io/name": "prometheus"}, "10.2.0.2", namespace="monitoring")
    stranger = Endpoint("stranger", {"app": "x"}, "10.2.0.3", namespace="default")
    assert allowed(policies, prometheus, pod("aggregator-metrics", "10.1.0.40"), 9464)
    assert allowed(policies, prometheus, pod("aggregator-proxy", "10.1.0.41"), 3000)
    assert not allowed(policies, stranger, pod("aggregator-metrics", "10.1.0.40"), 9464)


@needs_promtool
def test_failure_alert_pages_on_a_failure_and_not_on_a_restart_after_retention(tmp_path: Path) -> None:
    """Regression (issue 19, minor 8): counters are counted from the run history when `metrics serve` starts, so
    after retention deleted failed runs a restart shows a lower count; Prometheus reads the drop as a reset and
    `increase()` counted the whole history as new failures, paging. `promtool test rules` on the shipped rules:
    a new failure pages, the drop does not; and without the `unless … resets` guard the drop would page."""
    cases = (DEPLOY.parent / "aggregator_tests" / "deploy" / "alert_rules_test.yml").read_text()
    rules = DEPLOY / "prometheus" / "rules" / "aggregator.yml"
    assert rules.read_text() == (DEPLOY / "helm" / "aggregator" / "files" / "prometheus-rules.yml").read_text()
    (tmp_path / "rules.yml").write_text(rules.read_text())
    (tmp_path / "test.yml").write_text(cases.replace("RULES", "rules.yml"))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    unguarded = re.sub(r"\n\s*unless on \(pipeline\)[^\n]*", "", rules.read_text())
    assert unguarded != rules.read_text()
    (tmp_path / "rules.yml").write_text(unguarded)
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode != 0 and "shop" in result.stdout + result.stderr, "the test has teeth"
