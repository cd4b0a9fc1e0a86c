"""The worker (`aggregator worker`), the data plane for connection checks and previews, as the chart and Compose
deploy it: its exact command, the pipelines' environment and not the proxy's secrets, reachable only from the
proxy, reaching sources but not the API server; and the proxy and worker scale out (HPA, PDB)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.test_chart import named
from aggregator_tests.deploy.test_network_policies import Endpoint, allowed

COMMAND = ["aggregator", "worker", "--host", "0.0.0.0", "--port", "8081"]  # noqa: S104 (the container's address in the manifests)
PROXY_SECRETS = {"AGGREGATOR_PROXY_DB_URL", "AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_OIDC_CLIENT_SECRET"}


@pytest.fixture(scope="module")
def objects(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return render(helm, tmp_path_factory.mktemp("helm-home"))


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_worker_runs_the_worker_command_with_the_pipelines_environment(objects: list[dict]) -> None:
    pod = named(objects, "Deployment", "aggregator-worker")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == COMMAND
    env = env_of(container)
    assert env["AGGREGATOR_WORKER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "aggregator-worker-token", "key": "AGGREGATOR_WORKER_TOKEN"}
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == ["aggregator-runs"]
    assert not PROXY_SECRETS & set(env), "the worker must not get the proxy's secrets"
    referenced = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
    assert "aggregator-proxy" not in referenced
    assert pod["serviceAccountName"] == "aggregator-user-code" and pod["automountServiceAccountToken"] is False


def test_the_proxy_reaches_the_worker_at_its_service(objects: list[dict]) -> None:
    proxy = named(objects, "Deployment", "aggregator-proxy")["spec"]["template"]["spec"]["containers"][0]
    env = env_of(proxy)
    service = named(objects, "Service", "aggregator-worker")
    assert env["AGGREGATOR_WORKER_URL"]["value"] == f"http://aggregator-worker:{service['spec']['ports'][0]['port']}"
    assert env["AGGREGATOR_WORKER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "aggregator-worker-token"
    labels = named(objects, "Deployment", "aggregator-worker")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_only_the_proxy_reaches_the_worker_and_the_worker_reaches_sources_only(objects: list[dict]) -> None:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]

    def labels(name: str) -> dict[str, str]:
        return named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]

    worker = Endpoint("worker", labels("aggregator-worker"), "10.1.0.30")
    others = {name: Endpoint(name, labels(name), f"10.1.0.{31 + i}") for i, name in enumerate(
        ["aggregator-proxy", "aggregator-webserver", "aggregator-daemon", "aggregator-code-server"])}
    reaching = {name for name, e in others.items() if allowed(policies, e, worker, 8081)}
    assert reaching == {"aggregator-proxy"}
    internet = Endpoint("source", {}, "93.184.216.34", namespace=None)
    api = Endpoint("api", {}, "10.0.16.10", namespace=None)
    metadata = Endpoint("metadata", {}, "169.254.169.254", namespace=None)
    assert allowed(policies, worker, internet, 443)
    assert not allowed(policies, worker, api, 443)
    assert not allowed(policies, worker, metadata, 80)
    assert not allowed(policies, worker, others["aggregator-code-server"], 3030)


@pytest.mark.parametrize("name", ["aggregator-proxy", "aggregator-worker"])
def test_stateless_components_scale_by_configuration(objects: list[dict], name: str) -> None:
    deployment = named(objects, "Deployment", name)
    hpa = named(objects, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # The HPA owns the replica count: a fixed one in the Deployment would fight it on every upgrade.
    assert "replicas" not in deployment["spec"]
    pdb = named(objects, "PodDisruptionBudget", name)
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_without_autoscaling_the_replica_count_is_the_value(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, "--set", "worker.autoscaling.enabled=false", "--set", "worker.replicas=3")
    assert named(objects, "Deployment", "aggregator-worker")["spec"]["replicas"] == 3
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler" and o["metadata"]["name"] == "aggregator-worker"]

