"""Who can reach whom under the rendered NetworkPolicies, evaluated with Kubernetes' own rules: a connection is
allowed when the source's egress and the destination's ingress both allow it; a pod selected by no policy of a
direction is open in that direction, a pod selected by any policy allows only what some policy lists.

Pods carry the labels they get in a cluster: every component's from the rendered chart, and run pods from the
Job the real K8sRunLauncher creates with the chart's instance (test_k8s_run_launch.launched_job)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.test_k8s_run_launch import launched_job  # noqa: F401  (a fixture, used by name)

NAMESPACE = "dagster"
DATABASE_IP = "10.0.64.10"  # inside the chart's default database.cidrs
API_SERVER_IP = "10.0.16.10"  # the chart's default kubernetesApi.cidrs (an endpoint address)
WEBSERVER_PORT, CODE_SERVER_PORT, DB_PORT, PROXY_PORT = 3001, 3030, 5432, 3000


@dataclass(frozen=True)
class Endpoint:
    name: str
    labels: dict[str, str]
    ip: str
    namespace: str | None = NAMESPACE  # None: outside the cluster (matched by ipBlock only)


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "Exists" and value is None:
            return False
    return True


def peer_matches(peer: dict, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(other.ip)
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], ns_labels):
            return False
    elif other.namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def port_matches(rule: dict, port: int) -> bool:
    return "ports" not in rule or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP"
                                      for p in rule["ports"])


def direction_allows(policies: list[dict], pod: Endpoint, other: Endpoint, port: int, direction: str) -> bool:
    if pod.namespace != NAMESPACE:
        return True  # not ours to restrict
    kind = "Ingress" if direction == "ingress" else "Egress"
    key = "from" if direction == "ingress" else "to"
    applying = [p for p in policies if kind in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.labels)]
    if not applying:
        return True
    return any(port_matches(rule, port) and ("from" not in rule and "to" not in rule
                                             or any(peer_matches(peer, other) for peer in rule.get(key, [])))
               for policy in applying for rule in policy["spec"].get(direction, []))


def allowed(policies: list[dict], src: Endpoint, dst: Endpoint, port: int) -> bool:
    return (direction_allows(policies, src, dst, port, "egress")
            and direction_allows(policies, dst, src, port, "ingress"))


@pytest.fixture(scope="module")
def policies(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict[str, dict]]:
    objects = render(helm, tmp_path_factory.mktemp("helm-home"))
    templates = {}
    for o in objects:
        if o["kind"] in ("Deployment", "Job", "CronJob"):
            spec = o["spec"]["jobTemplate"]["spec"] if o["kind"] == "CronJob" else o["spec"]
            templates[o["metadata"]["name"]] = spec["template"]["metadata"]["labels"]
    return [o for o in objects if o["kind"] == "NetworkPolicy"], templates


@pytest.fixture
def endpoints(policies, launched_job) -> dict[str, Endpoint]:  # noqa: F811
    _, labels = policies
    job, *_ = launched_job
    return {
        "ingress-controller": Endpoint("ingress-controller", {"app.kubernetes.io/name": "ingress-nginx"}, "10.1.0.2",
                                       namespace="ingress-nginx"),
        "proxy": Endpoint("proxy", labels["aggregator-proxy"], "10.1.0.3"),
        "webserver": Endpoint("webserver", labels["aggregator-webserver"], "10.1.0.4"),
        "daemon": Endpoint("daemon", labels["aggregator-daemon"], "10.1.0.5"),
        "code-server": Endpoint("code-server", labels["aggregator-code-server"], "10.1.0.6"),
        "run": Endpoint("run", job["spec"]["template"]["metadata"]["labels"], "10.1.0.7"),
        "migrate": Endpoint("migrate", labels["aggregator-migrate"], "10.1.0.8"),
        "backup": Endpoint("backup", labels["aggregator-backup"], "10.1.0.9"),
        "specs-apply": Endpoint("specs-apply", labels["aggregator-specs-apply"], "10.1.0.11"),
        "other-pod": Endpoint("other-pod", {"app": "something-else"}, "10.1.0.10"),
        "database": Endpoint("database", {}, DATABASE_IP, namespace=None),
        "internet": Endpoint("internet", {}, "93.184.216.34", namespace=None),
        "metadata": Endpoint("metadata", {}, "169.254.169.254", namespace=None),
        "api-server": Endpoint("api-server", {}, API_SERVER_IP, namespace=None),
    }


def test_code_server_is_reachable_only_by_webserver_daemon_and_runs(policies, endpoints) -> None:
    """Regression (issue 15, defect 3): the user-code gRPC server is unauthenticated and runs user code with the
    pipelines' secrets, and it was reachable from every pod."""
    rules, _ = policies
    code = endpoints["code-server"]
    reaching = {name for name, e in endpoints.items() if e is not code and allowed(rules, e, code, CODE_SERVER_PORT)}
    assert reaching == {"webserver", "daemon", "run"}


def test_webserver_is_reachable_only_by_the_proxy(policies, endpoints) -> None:
    rules, _ = policies
    web = endpoints["webserver"]
    assert {n for n, e in endpoints.items() if e is not web and allowed(rules, e, web, WEBSERVER_PORT)} == {"proxy"}


def test_proxy_is_reachable_only_from_the_ingress_controller(policies, endpoints) -> None:
    rules, _ = policies
    proxy = endpoints["proxy"]
    assert {n for n, e in endpoints.items() if e is not proxy and allowed(rules, e, proxy, PROXY_PORT)} == {
        "ingress-controller"}


def test_every_component_reaches_postgres_and_nothing_else_does(policies, endpoints) -> None:
    rules, _ = policies
    db = endpoints["database"]
    reaching = {n for n, e in endpoints.items() if e.namespace and allowed(rules, e, db, DB_PORT)}
    assert reaching == {"proxy", "webserver", "daemon", "code-server", "run", "migrate", "backup", "specs-apply",
                        "ingress-controller"}
    assert "other-pod" not in reaching


def test_the_spec_apply_job_reaches_only_the_database(policies, endpoints) -> None:
    """It holds the owner's URL of the platform database: nothing else, no sources, no API server."""
    rules, _ = policies
    job = endpoints["specs-apply"]
    targets = {n for n, e in endpoints.items() if e is not job and any(allowed(rules, job, e, port) for port in (
        DB_PORT, 443, 6443, CODE_SERVER_PORT, WEBSERVER_PORT, PROXY_PORT))}
    assert targets == {"database"}


def test_default_deny_and_sources_without_cloud_metadata(policies, endpoints) -> None:
    rules, _ = policies
    e = endpoints
    assert not allowed(rules, e["other-pod"], e["internet"], 443), "a pod of no component gets nowhere"
    assert not allowed(rules, e["proxy"], e["code-server"], CODE_SERVER_PORT)
    assert not allowed(rules, e["migrate"], e["internet"], 443)
    # Run pods fetch sources; nobody reaches the node's cloud credentials.
    assert allowed(rules, e["run"], e["internet"], 443)
    assert not any(allowed(rules, src, e["metadata"], 80) for src in e.values() if src.namespace == NAMESPACE)


def test_the_evaluator_sees_an_open_namespace_without_policies(endpoints) -> None:
    """Not vacuous: with no policies (fb0fb08 had none for the code server) every pod reaches it."""
    code = endpoints["code-server"]
    assert allowed([], endpoints["other-pod"], code, CODE_SERVER_PORT)


def test_every_pod_resolves_names_through_cluster_dns(policies, endpoints) -> None:
    rules, _ = policies
    dns = Endpoint("dns", {"k8s-app": "kube-dns"}, "10.1.9.9", namespace="kube-system")
    for name, pod in endpoints.items():
        if pod.namespace == NAMESPACE:
            assert allowed(rules, pod, dns, 53), name


def test_only_the_daemon_and_webserver_reach_the_api_server(policies, endpoints) -> None:
    """Regression (issue 19, major 4): `sourcesEgress` (0.0.0.0/0) let run pods and the code server, where
    pipeline code runs, connect to the API server. Only the two components that manage run Jobs may."""
    rules, _ = policies
    api = endpoints["api-server"]
    for port in (443, 6443):
        reaching = {n for n, e in endpoints.items() if e.namespace == NAMESPACE and allowed(rules, e, api, port)}
        assert reaching == {"daemon", "webserver"}, port


def test_backups_leave_the_cluster_only_where_configured(helm: Path, tmp_path: Path) -> None:
    """Issue 19, minor 12: backups stayed on a volume in the cluster they protect. With `backup.copy.claimName` the
    Job copies each dump to a second claim; with `backup.ship.command` it ships it, reaching the object store's
    addresses (`backup.ship.egressCidrs`) and nothing else. Without them the backup pod reaches PostgreSQL only."""
    store = Endpoint("object-store", {}, "52.219.0.10", namespace=None)
    default = render(helm, tmp_path / "default")
    backup_labels = next(o for o in default if o["kind"] == "CronJob" and o["metadata"]["name"] == "aggregator-backup"
                         )["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    backup = Endpoint("backup", backup_labels, "10.1.0.9")
    internet = Endpoint("internet", {}, "93.184.216.34", namespace=None)
    rules = [o for o in default if o["kind"] == "NetworkPolicy"]
    assert not allowed(rules, backup, store, 443)

    objects = render(helm, tmp_path / "shipping", "--set", "backup.copy.claimName=backups-other-zone",
                     "--set", 'backup.ship.command=aws s3 cp "$1" "s3://example-backups/aggregator/$2"',
                     "--set", "backup.ship.serviceAccountName=aggregator-backup-shipper",
                     "--set", "backup.ship.envFromSecret=aggregator-backup-ship",
                     "--set", "backup.image=registry.example.com/postgres-awscli:16",
                     "--set", "backup.ship.egressCidrs={52.219.0.0/16}")
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob" and o["metadata"]["name"] == "aggregator-backup"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BACKUP_SHIP_COMMAND"] == 'aws s3 cp "$1" "s3://example-backups/aggregator/$2"'
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    assert claims[mounts[env["BACKUP_COPY_DIR"]]] == "backups-other-zone"
    assert {"secretRef": {"name": "aggregator-backup-ship"}} in container["envFrom"]
    assert pod["serviceAccountName"] == "aggregator-backup-shipper" and pod["automountServiceAccountToken"] is False
    rules = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert allowed(rules, backup, store, 443)
    assert not allowed(rules, backup, internet, 443) and not allowed(rules, backup, store, 80)
