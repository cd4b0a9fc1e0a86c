"""deploy/k8s/*.yaml against the Kubernetes schemas (kubernetes-validate ships them offline), and with each
other: selectors, ports and names that must line up for traffic to flow."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from aggregator_tests.deploy.paths import DEPLOY, KUBERNETES_VERSION

MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
VERSIONS = [KUBERNETES_VERSION, kubernetes_validate.utils.latest_version()]


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in MANIFESTS:
        for doc in documents(path):
            out.setdefault(doc["kind"], []).append(doc)
    return out


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate_strictly(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_rejects_a_misspelled_field() -> None:
    """The check above is not vacuous: one typo in the Deployment fails it."""
    deployment = copy.deepcopy(by_kind()["Deployment"][0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_proxy_objects_line_up() -> None:
    kinds = by_kind()
    (deployment,) = kinds["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"], pod_labels)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["command"][container["command"].index("--port") + 1] == str(port_names["http"])

    (service,) = kinds["Service"]
    assert service["spec"]["type"] == "ClusterIP"
    assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(port_names)

    (ingress,) = kinds["Ingress"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"]
    for rule in ingress["spec"]["rules"]:
        assert rule["host"] in tls["hosts"]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}

    (pdb,) = kinds["PodDisruptionBudget"]
    assert matches(pdb["spec"]["selector"], pod_labels)
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"], "a PDB equal to replicas blocks drains"


def test_only_the_proxy_may_reach_the_webserver() -> None:
    kinds = by_kind()
    (deployment,) = kinds["Deployment"]
    proxy_labels = deployment["spec"]["template"]["metadata"]["labels"]
    webserver_policies = [p for p in kinds["NetworkPolicy"]
                          if p["spec"]["podSelector"]["matchLabels"].get("component") == "dagster-webserver"]
    (policy,) = webserver_policies
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, "a namespaceSelector or ipBlock here would admit more than the proxy"
    assert matches(peer["podSelector"], proxy_labels)
    # The proxy's upstream is the port the policy opens.
    upstream = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    url = upstream[upstream.index("--upstream") + 1]
    assert url.endswith(f":{rule['ports'][0]['port']}")
    # The chart release the proxy expects: the webserver Service `<release>-dagster-webserver`.
    assert url.startswith("http://dagster-dagster-webserver:")
