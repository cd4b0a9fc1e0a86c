"""The Kubernetes Job that Dagster's own K8sRunLauncher creates for a run, with deploy/dagster.k8s.yaml.

The launcher runs unmodified against an HTTPS API server on loopback (kube_api.in_cluster), so what is checked is
the exact body a cluster would receive: it must validate against the Kubernetes schemas and carry our resources,
secrets, security context and clean-up settings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import kubernetes_validate
import psycopg
import pytest
import yaml
from dagster._core.test_utils import create_run_for_test

from aggregator_tests.deploy.kube_api import FakeApiServer
from aggregator_tests.deploy.paths import DEPLOY, KUBERNETES_VERSION
from aggregator_tests.postgres import PgDatabase

IMAGE = "registry.example.com/data-aggregator:0.1.0"


@dg.op
def noop() -> None:
    """Does nothing."""


@dg.job
def probe_job() -> None:
    noop()


@pytest.fixture
def launched_job(tmp_path: Path, pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch, in_cluster: FakeApiServer):
    """(the Job body the launcher POSTed, the run, its status, DAGSTER_HOME) after launching one run."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.k8s.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        origin = dg.reconstructable(probe_job).get_python_origin()
        # The image a user-code deployment reports for its code location; runs inherit it.
        origin = origin._replace(repository_origin=origin.repository_origin._replace(container_image=IMAGE))
        run = create_run_for_test(
            instance, job_name="probe_job", job_code_origin=origin, tags={"aggregator/pipeline": "sales"}
        )
        # No workspace: the launcher needs only the run's code origin, which the run carries.
        instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        launched = instance.get_run_by_id(run.run_id)
        assert launched is not None
        status = launched.status
    namespace = yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())["run_launcher"]["config"]["job_namespace"]
    jobs = in_cluster.created.get(f"/apis/batch/v1/namespaces/{namespace}/jobs", [])
    assert len(jobs) == 1, f"expected one Job in namespace {namespace}, API server saw {in_cluster.created}"
    return jobs[0], run, status, home


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.utils.latest_version()])
def test_run_worker_job_validates_against_kubernetes_schema(launched_job, version: str) -> None:
    job, *_ = launched_job
    kubernetes_validate.validate(job, version, strict=True)


def test_run_worker_job_carries_the_instance_settings(launched_job, pg_db: PgDatabase) -> None:
    job, run, status, _ = launched_job
    config = yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())["run_launcher"]["config"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert container["image"] == IMAGE
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert container["resources"] == config["resources"]
    assert {"secretRef": {"name": "aggregator-runs"}} in container["envFrom"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DAGSTER_HOME"] == config["dagster_home"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108 (a mount path in the pod spec)
    assert pod["serviceAccountName"] == config["service_account_name"]
    # Pipeline code gets no API credentials (test_least_privilege.py: that account has no Role either).
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0
    assert job["metadata"]["labels"]["app.kubernetes.io/part-of"] == "data-aggregator"

    # The launch is recorded in PostgreSQL like any other run event.
    assert status == dg.DagsterRunStatus.STARTING
    with psycopg.connect(pg_db.dsn) as conn:
        row = conn.execute(
            "SELECT array_agg(dagster_event_type) FROM event_logs WHERE run_id = %s", (run.run_id,)
        ).fetchone()
    assert row is not None
    (kinds,) = row
    assert "PIPELINE_STARTING" in kinds


def test_run_worker_writes_only_to_mounted_volumes(launched_job) -> None:
    """Regression: with `readOnlyRootFilesystem`, a run worker that writes step outputs or compute logs under
    DAGSTER_HOME (Dagster's default) fails on its first write. The instance a run pod uses travels in the
    `execute_run` argument, so read the directories from there and check each is on a mounted volume."""
    job, _, _, home = launched_job
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    instance_ref = json.loads(container["args"][3])["instance_ref"]
    mounts = [m["mountPath"].rstrip("/") + "/" for m in container["volumeMounts"]]
    # Paths under the launching process's DAGSTER_HOME; in the cluster the daemon's is the configured one.
    pod_home = yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())["run_launcher"]["config"]["dagster_home"]

    def in_pod(path: str) -> str:
        return path.replace(str(home), pod_home, 1).rstrip("/") + "/"

    artifacts = in_pod(yaml.safe_load(instance_ref["local_artifact_storage_data"]["config_yaml"])["base_dir"])
    assert any(artifacts.startswith(m) for m in mounts), f"{artifacts} is not under a mounted volume {mounts}"
    compute_logs = instance_ref["compute_logs_data"]
    if compute_logs["class_name"] != "NoOpComputeLogManager":
        # LocalComputeLogManager writes to base_dir; the cloud managers stage files in local_dir before upload.
        config = yaml.safe_load(compute_logs["config_yaml"])
        logs_dir = in_pod(config.get("local_dir") or config["base_dir"])
        assert any(logs_dir.startswith(m) for m in mounts), f"{logs_dir} is not under a mounted volume {mounts}"
