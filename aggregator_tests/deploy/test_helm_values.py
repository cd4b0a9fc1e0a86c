"""deploy/helm/values.yaml for the official Dagster chart.

No helm binary or chart is available offline, so the chart is not rendered here. What is checked instead:
- the K8sRunLauncher section, mapped to launcher config the way the chart's instance template maps it, passes
  K8sRunLauncher's own config schema and equals deploy/dagster.k8s.yaml (tested end to end in
  test_k8s_run_launch.py), and the queue, monitoring and retry settings equal that file's;
- every Kubernetes object fragment in the values (resources, security contexts, env, secrets, run pod and Job
  config) is placed where the chart places it, in a Pod or Job, and validated against the Kubernetes schemas;
- the user-code deployment's `dagster api grpc` arguments are accepted by the installed dagster
  (test_entry_commands.py).
"""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster_k8s import K8sRunLauncher

from aggregator_tests.deploy.paths import DEPLOY, KUBERNETES_VERSION
from aggregator_tests.deploy.test_k8s_run_launch import probe_job as _probe_job

VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
INSTANCE = yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())


def snake(obj):
    """Dagster accepts Kubernetes config in either case; compare in snake_case."""
    if isinstance(obj, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snake(v) for v in obj]
    return obj


def chart_launcher_config(values: dict) -> dict:
    """runLauncher.config.k8sRunLauncher as the chart's instance ConfigMap renders it (secret and ConfigMap
    references become names; runK8sConfig keys become the launcher's snake_case keys)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s["jobNamespace"],
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": "dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_secrets": [s["name"] for s in k8s.get("envSecrets", [])],
        "env_vars": k8s.get("envVars", []),
        "resources": k8s["resources"],
        "security_context": k8s["securityContext"],
        "labels": k8s["labels"],
        "fail_pod_on_run_failure": k8s["failPodOnRunFailure"],
        "run_k8s_config": snake(k8s["runK8sConfig"]),
    }
    return config


def test_run_launcher_values_pass_the_launcher_schema() -> None:
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), chart_launcher_config(VALUES))
    assert result.success, [e.message for e in result.errors or []]


def processed_launcher_config() -> dict:
    """The chart's run-launcher config with the launcher's defaults filled in, as K8sRunLauncher receives it."""
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), chart_launcher_config(VALUES))
    assert result.success and result.value is not None, [e.message for e in result.errors or []]
    return dict(result.value)


@pytest.mark.parametrize(
    "key", ["job_namespace", "image_pull_policy", "service_account_name", "dagster_home", "env_secrets",
            "env_vars", "resources", "security_context", "labels", "fail_pod_on_run_failure", "run_k8s_config"],
)
def test_run_launcher_values_equal_the_k8s_instance_file(key: str) -> None:
    from_values = chart_launcher_config(VALUES)[key]
    from_file = INSTANCE["run_launcher"]["config"][key]
    if key == "env_secrets":
        # The one documented difference: the file's storage reads DAGSTER_PG_URL from its own secret, where the
        # chart's instance gets the password through postgres_password_secret.
        from_file = [s for s in from_file if s != "aggregator-dagster-db"]
    assert snake(from_values) == snake(from_file)


def test_queue_monitoring_and_retries_equal_the_k8s_instance_file() -> None:
    daemon = VALUES["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert queue["maxConcurrentRuns"] == INSTANCE["concurrency"]["runs"]["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]
    coordinator = INSTANCE["run_coordinator"]["config"]
    assert queue["dequeueUseThreads"] == coordinator["dequeue_use_threads"]
    assert queue["dequeueNumWorkers"] == coordinator["dequeue_num_workers"]
    monitoring = {k: v for k, v in snake(daemon["runMonitoring"]).items()}
    assert monitoring == INSTANCE["run_monitoring"]
    assert snake(daemon["runRetries"]) == INSTANCE["run_retries"]


def test_external_postgres_and_no_bypass_of_the_proxy() -> None:
    pg = VALUES["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"]
    assert VALUES["generatePostgresqlPasswordSecret"] is False, "the password secret is created out of band"
    assert "postgresqlPassword" not in pg, "no password in values files"
    assert VALUES["ingress"]["enabled"] is False
    assert VALUES["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    assert VALUES["dagster-user-deployments"]["enabled"] is True


def component_pods() -> dict[str, dict]:
    """Each long-running component's values as the Pod the chart builds from them."""
    components = {
        "webserver": VALUES["dagsterWebserver"],
        "daemon": VALUES["dagsterDaemon"],
        **{f"user-code/{d['name']}": d for d in VALUES["dagster-user-deployments"]["deployments"]},
    }
    pods = {}
    for name, c in components.items():
        image = c["image"]
        container = {
            "name": name.replace("/", "-"),
            "image": f"{image['repository']}:{image['tag']}",
            "imagePullPolicy": image["pullPolicy"],
            "resources": c["resources"],
            "securityContext": c["securityContext"],
            "envFrom": [{"secretRef": {"name": s["name"]}} for s in c.get("envSecrets", [])],
            "env": c.get("env", []),
        }
        pods[name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name.replace("/", "-"), "labels": c.get("labels", {})},
            "spec": {"securityContext": c["podSecurityContext"], "containers": [container]},
        }
    return pods


def run_worker_job() -> dict:
    """The run launcher's pod and Job settings from the values, in the Job the launcher creates."""
    k8s = copy.deepcopy(VALUES["runLauncher"]["config"]["k8sRunLauncher"])
    run = k8s["runK8sConfig"]
    container = {
        "name": "dagster",
        "image": "registry.example.com/data-aggregator:0.1.0",
        "resources": k8s["resources"],
        "securityContext": k8s["securityContext"],
        "envFrom": [{"secretRef": {"name": s["name"]}} for s in k8s["envSecrets"]],
        "env": [dict(zip(("name", "value"), v.split("=", 1))) for v in k8s["envVars"]],
        **run["containerConfig"],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "dagster-run-probe", "labels": k8s["labels"]},
        "spec": {
            **run["jobSpecConfig"],
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **run["podSpecConfig"]}},
        },
    }


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.utils.latest_version()])
def test_kubernetes_fragments_in_values_validate(version: str) -> None:
    for name, pod in component_pods().items():
        kubernetes_validate.validate(pod, version, strict=True)
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True, name
        assert pod["spec"]["containers"][0]["resources"]["limits"], name
    kubernetes_validate.validate(run_worker_job(), version, strict=True)


def test_fragment_validation_catches_a_misplaced_field() -> None:
    """Not vacuous: a pod-level field put in runK8sConfig.containerConfig (an easy slip) fails here."""
    job = run_worker_job()
    job["spec"]["template"]["spec"]["containers"][0]["fsGroup"] = 10001
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def chart_container_context(deployment: dict, namespace: str = "dagster") -> dict | None:
    """The container context the chart gives a user deployment's code location when
    `includeConfigInLaunchedRuns` is on (the chart's `dagsterUserDeployments.k8sContainerContext` helper: the
    deployment's pull policy, secrets, env, labels, resources and security contexts); None when it is off."""
    if not deployment.get("includeConfigInLaunchedRuns", {}).get("enabled", False):
        return None
    return {"k8s": {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_secrets": [s["name"] for s in deployment.get("envSecrets", [])],
        "env": deployment.get("env", []),
        "namespace": namespace,
        "labels": deployment.get("labels", {}),
        "resources": deployment.get("resources", {}),
        "security_context": deployment.get("securityContext", {}),
        "run_k8s_config": {"pod_spec_config": {"security_context": deployment.get("podSecurityContext", {})}},
    }}


@pytest.mark.parametrize("deployment", VALUES["dagster-user-deployments"]["deployments"], ids=lambda d: d["name"])
def test_run_pods_get_the_documented_resources_after_the_merge(deployment: dict, in_cluster) -> None:
    """Regression (issue 15, defect 2): with `includeConfigInLaunchedRuns`, the user deployment's resources (sized
    for the code server: 1Gi) land in the code location's container context, and dagster-k8s merges that over the
    run launcher's settings, so run pods got 1Gi, not the documented 2Gi. Checked on the MERGED context, the way
    the launcher computes it for a run (`K8sContainerContext.create_for_run`), not on the launcher's values."""
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext

    launcher = K8sRunLauncher(**processed_launcher_config())

    origin = dg.reconstructable(_probe_job).get_python_origin()
    context = chart_container_context(deployment)
    origin = origin._replace(repository_origin=origin.repository_origin._replace(container_context=context))
    run = DagsterRun(job_name="probe", run_id="00000000-0000-0000-0000-000000000000", job_code_origin=origin)
    container = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    merged = container.run_k8s_config.container_config
    documented = VALUES["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    assert merged["resources"] == documented, f"run pods get {merged['resources']}, the docs promise {documented}"
    assert documented["limits"]["memory"] == "2Gi"
    # What a run needs still arrives without the code location's context: its secrets and env.
    assert {"secret_ref": {"name": "aggregator-runs"}} in merged["env_from"]
    assert {e["name"] for e in merged["env"]} >= {"AGGREGATOR_HOME", "AGGREGATOR_PIPELINES"}
    assert container.namespace == "dagster"


def test_the_merge_check_sees_the_code_location_override(in_cluster) -> None:
    """Not vacuous: the fb0fb08 setting (includeConfigInLaunchedRuns on, code server sized 1Gi) yields 1Gi."""
    import dagster as dg
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext

    launcher = K8sRunLauncher(**processed_launcher_config())
    deployment = copy.deepcopy(VALUES["dagster-user-deployments"]["deployments"][0])
    deployment["includeConfigInLaunchedRuns"] = {"enabled": True}
    origin = dg.reconstructable(_probe_job).get_python_origin()
    origin = origin._replace(repository_origin=origin.repository_origin._replace(
        container_context=chart_container_context(deployment)))
    run = DagsterRun(job_name="probe", run_id="00000000-0000-0000-0000-000000000001", job_code_origin=origin)
    merged = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True).run_k8s_config.container_config
    assert merged["resources"]["limits"]["memory"] == deployment["resources"]["limits"]["memory"] == "1Gi"


def test_compute_logs_outlive_the_run_pod() -> None:
    """Regression (issue 15, defect 10): with NoOpComputeLogManager a step's output existed only in the pod's log,
    and Jobs (with their pods) are deleted a day after they finish. Both Kubernetes instances keep step logs in a
    bucket, with the same settings, and those settings pass the manager's own config schema."""
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    assert VALUES["computeLogManager"]["type"] == "S3ComputeLogManager"
    from_values = snake(VALUES["computeLogManager"]["config"]["s3ComputeLogManager"])
    from_file = INSTANCE["compute_logs"]
    assert (from_file["module"], from_file["class"]) == ("dagster_aws.s3.compute_log_manager", "S3ComputeLogManager")
    assert from_values == from_file["config"]
    result = process_config(resolve_to_config_type(S3ComputeLogManager.config_type()), from_file["config"])
    assert result.success, [e.message for e in result.errors or []]
    # Files are staged under local_dir before upload: it must be on the run pod's writable /tmp volume.
    mounts = [m["mountPath"] for m in
              VALUES["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]["volumeMounts"]]
    assert any(from_file["config"]["local_dir"].startswith(m.rstrip("/") + "/") for m in mounts)


def test_run_monitoring_is_on_in_the_chart_instance() -> None:
    assert VALUES["dagsterDaemon"]["runMonitoring"]["enabled"] is True
