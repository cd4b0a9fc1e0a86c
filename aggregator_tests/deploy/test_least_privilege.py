"""Regression (issue 19, major 4): user code could act on the cluster. Run pods and the code server mounted the
`dagster` service-account token (its Role creates pods and jobs), a launcher's `dagster-k8s/config` tag was merged
into the pod spec, and no namespace enforced Pod Security Admission.

Checked on what the chart renders and on the Job the real K8sRunLauncher creates with the chart's instance:
- pipeline code (code server, run pods) runs as an account bound to no Role, with no token mounted;
- the Role of the account that has a token cannot read Secrets or create bare pods;
- every pod passes the `restricted` Pod Security profile, and the namespace manifest enforces it;
- the run launcher rejects any tag-supplied pod field other than resources (the proxy refuses the tag first);
- the documented restore pod passes the profile and the default-deny policies let it reach PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster_k8s import K8sRunLauncher

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.paths import DEPLOY
from aggregator_tests.deploy.test_chart import named, pod_specs
from aggregator_tests.deploy.test_k8s_run_launch import launched_job  # noqa: F401  (a fixture, used by name)
from aggregator_tests.deploy.test_k8s_run_launch import probe_job as _probe_job
from aggregator_tests.deploy.test_network_policies import DATABASE_IP, DB_PORT, Endpoint, allowed

# The `restricted` profile's volume types (Pod Security Standards, v1.30+).
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(spec: dict) -> list[str]:
    """Why `spec` (a PodSpec) fails Pod Security's `restricted` profile; empty when it passes."""
    problems = []
    pod_sc = spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runAsUser 0")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities not dropped")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds {caps['add']}")
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
            problems.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems


@pytest.fixture(scope="module")
def objects(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    spec = DEPLOY.parent / "aggregator" / "examples" / "pipelines" / "sales.yaml"
    return render(helm, tmp_path_factory.mktemp("helm-home"), "--set", "pgbouncer.enabled=true",
                  "--set-file", f"pipelines.specs.sales={spec}")


def test_user_code_runs_without_api_credentials(objects: list[dict], launched_job) -> None:  # noqa: F811
    job, *_ = launched_job
    run_pod = job["spec"]["template"]["spec"]
    code_server = named(objects, "Deployment", "aggregator-code-server")["spec"]["template"]["spec"]
    for where, pod in {"run pod": run_pod, "code server": code_server}.items():
        assert pod["serviceAccountName"] == "aggregator-user-code", where
        assert pod["automountServiceAccountToken"] is False, where
        mounts = [m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])]
        assert not [m for m in mounts if "serviceaccount" in m], where
    account = named(objects, "ServiceAccount", "aggregator-user-code")
    assert account["automountServiceAccountToken"] is False
    bound = {s["name"] for b in objects if b["kind"] in ("RoleBinding", "ClusterRoleBinding") for s in b["subjects"]}
    assert "aggregator-user-code" not in bound, "the user-code account must have no rights"


def test_the_dagster_role_manages_run_jobs_and_nothing_else(objects: list[dict]) -> None:
    role = named(objects, "Role", "aggregator-dagster")
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert not any("*" in g for g in granted)
    assert not any(resource in ("secrets", "configmaps", "serviceaccounts", "roles", "rolebindings")
                   for _, resource, _ in granted)
    assert ("", "pods", "create") not in granted and ("batch", "jobs", "create") in granted
    users = {where for where, t in pod_specs(objects).items() if t["spec"].get("serviceAccountName") == "aggregator-dagster"}
    assert users == {"Deployment/aggregator-webserver", "Deployment/aggregator-daemon"}


def test_every_pod_passes_the_restricted_profile(objects: list[dict], launched_job) -> None:  # noqa: F811
    job, *_ = launched_job
    pods = {where: t["spec"] for where, t in pod_specs(objects).items()}
    pods["run pod (K8sRunLauncher)"] = job["spec"]["template"]["spec"]
    for where, spec in pods.items():
        assert restricted_violations(spec) == [], where


def test_the_profile_check_has_teeth(launched_job) -> None:  # noqa: F811
    """Not vacuous: a run pod with a hostPath volume or a root container fails the check above."""
    job, *_ = launched_job
    spec = json.loads(json.dumps(job["spec"]["template"]["spec"]))
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    spec["containers"][0]["securityContext"]["runAsUser"] = 0
    assert len(restricted_violations(spec)) == 2


def test_the_namespace_enforces_the_restricted_profile() -> None:
    namespace = yaml.safe_load((DEPLOY / "helm" / "namespace.yaml").read_text())
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespace["metadata"]["name"] == "dagster"


@pytest.fixture
def launcher(objects: list[dict], in_cluster) -> Iterator[K8sRunLauncher]:
    config = yaml.safe_load(named(objects, "ConfigMap", "aggregator-dagster-instance")["data"]["dagster.yaml"])
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), config["run_launcher"]["config"])
    assert result.success and result.value is not None, result.errors
    yield K8sRunLauncher(**result.value)


@pytest.mark.parametrize(("tag", "refused"), [
    ({"container_config": {"resources": {"limits": {"memory": "4Gi"}}}}, False),
    ({"pod_spec_config": {"volumes": [{"name": "h", "host_path": {"path": "/"}}]}}, True),
    ({"pod_spec_config": {"service_account_name": "aggregator-dagster"}}, True),
    ({"container_config": {"security_context": {"privileged": True}}}, True),
], ids=["resources", "hostPath", "service-account", "privileged"])
def test_the_launcher_accepts_only_resources_from_a_run_tag(launcher: K8sRunLauncher, tag: dict,
                                                            refused: bool) -> None:
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext

    origin = dg.reconstructable(_probe_job).get_python_origin()
    run = DagsterRun(job_name="probe", run_id="00000000-0000-0000-0000-000000000002", job_code_origin=origin,
                     tags={"dagster-k8s/config": json.dumps(tag)})
    if refused:
        with pytest.raises(Exception, match="violated the allowed list"):
            K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    else:
        context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
        assert context.run_k8s_config.container_config["resources"]["limits"]["memory"] == "4Gi"


def documented_restore_pod() -> dict:
    """The pod of docs/deploy.md's `kubectl run restore …` command: its --labels and --overrides."""
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    command = re.search(r"kubectl -n dagster run restore .*?--overrides='(.*?)'\n", docs, re.DOTALL)
    assert command, "docs/deploy.md has no `kubectl run restore` command"
    text = command.group(0)
    overrides = command.group(1).replace("'$DB'", "db.internal").replace("'$WAREHOUSE_PW'", "pw")
    found = re.search(r"--labels=(\S+)", text)
    assert found, "the restore pod has no --labels: the default-deny policies leave it DNS only"
    labels = dict(tuple(kv.split("=", 1)) for kv in found.group(1).split(","))
    pod = json.loads(overrides)
    pod.setdefault("metadata", {})["labels"] = labels
    return pod


def test_the_documented_restore_pod_is_admitted_and_reaches_postgres(objects: list[dict]) -> None:
    """Regression (issue 19, major 7): `kubectl run restore` pods got DNS only under the chart's default deny."""
    pod = documented_restore_pod()
    assert restricted_violations(pod["spec"]) == []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    restore = Endpoint("restore", pod["metadata"]["labels"], "10.1.0.20")
    database = Endpoint("database", {}, DATABASE_IP, namespace=None)
    assert allowed(policies, restore, database, DB_PORT)
    assert not allowed(policies, restore, Endpoint("internet", {}, "93.184.216.34", namespace=None), 443)
