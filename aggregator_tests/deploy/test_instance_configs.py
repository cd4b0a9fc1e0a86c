"""Every deployment `dagster.yaml` goes through Dagster's own instance construction on a real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from aggregator_tests.deploy.kube_api import FakeApiServer
from aggregator_tests.deploy.paths import DEPLOY
from aggregator_tests.postgres import PgDatabase

# (file, run launcher class it must configure). deploy/dagster.yaml serves docker-compose and any one-host
# deployment (DefaultRunLauncher: runs are processes of the code server); dagster.k8s.yaml is Kubernetes.
INSTANCE_FILES = [("dagster.yaml", "DefaultRunLauncher"), ("dagster.k8s.yaml", "K8sRunLauncher")]


def test_every_instance_file_in_deploy_is_checked_here() -> None:
    """Run monitoring, the queue and storage are checked per file below; a new instance file joins the list."""
    files = {p.name for p in DEPLOY.glob("*.yaml") if "storage" in (yaml.safe_load(p.read_text()) or {})}
    assert files == {name for name, _ in INSTANCE_FILES}


def load_yaml(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.fixture
def instance_home(tmp_path: Path, pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch):
    def make(name: str) -> Path:
        home = tmp_path / name.replace(".", "_")
        home.mkdir()
        shutil.copyfile(DEPLOY / name, home / "dagster.yaml")
        return home

    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    return make


@pytest.fixture
def instances(instance_home, in_cluster: FakeApiServer) -> Iterator[dict[str, dg.DagsterInstance]]:
    # Constructing the K8s instance builds its K8sRunLauncher (run monitoring needs it), which loads the
    # in-cluster service account: `in_cluster` gives this process a pod's environment, on loopback.
    made = {name: dg.DagsterInstance.from_config(str(instance_home(name))) for name, _ in INSTANCE_FILES}
    yield made
    for instance in made.values():
        instance.dispose()


@pytest.mark.parametrize(("name", "launcher"), INSTANCE_FILES)
def test_instance_config_passes_dagster_schema(name: str, launcher: str, instance_home) -> None:
    config, _ = dagster_instance_config(str(instance_home(name)))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config.get("run_launcher", {}).get("class", "DefaultRunLauncher") == launcher
    assert config["run_monitoring"]["enabled"] is True


@pytest.mark.parametrize(("name", "launcher"), INSTANCE_FILES)
def test_instance_stores_everything_in_postgres(
    name: str, launcher: str, instances: dict[str, dg.DagsterInstance], pg_db: PgDatabase
) -> None:
    instance = instances[name]
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    # A run written through this instance is in the test database: storage really is the configured server.
    run = instance.create_run_for_job(dg.GraphDefinition(name="probe").to_job())
    assert instance.get_run_by_id(run.run_id) is not None
    import psycopg

    with psycopg.connect(pg_db.dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE run_id = %s", (run.run_id,)).fetchone() == (1,)


@pytest.mark.parametrize(("name", "launcher"), INSTANCE_FILES)
def test_run_queue_limits_are_what_the_file_says(
    name: str, launcher: str, instances: dict[str, dg.DagsterInstance]
) -> None:
    instance = instances[name]
    coordinator = instance.run_coordinator
    assert type(coordinator).__name__ == "QueuedRunCoordinator"
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None, f"{name} configures no run queue"
    runs = load_yaml(name)["concurrency"]["runs"]
    assert queue.max_concurrent_runs == runs["max_concurrent_runs"] > 0
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    # The per-pipeline cap keys on the tag compile.py puts on every pipeline job.
    assert limits["aggregator/pipeline"]["limit"] == 2
    assert limits["aggregator/pipeline"]["value"] == {"applyLimitPerUniqueValue": True}
    assert instance.run_monitoring_enabled


def test_compose_instance_uses_the_default_launcher(instances: dict[str, dg.DagsterInstance]) -> None:
    assert type(instances["dagster.yaml"].run_launcher).__name__ == "DefaultRunLauncher"


def test_k8s_instance_builds_the_k8s_run_launcher_from_the_file(instances: dict[str, dg.DagsterInstance]) -> None:
    launcher = instances["dagster.k8s.yaml"].run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    config = k8s_launcher_config()
    assert launcher.job_namespace == config["job_namespace"]
    assert launcher.instance_config_map == config["instance_config_map"]
    assert launcher.env_secrets == config["env_secrets"]
    assert launcher.resources == config["resources"]
    assert launcher.fail_pod_on_run_failure is True


def k8s_launcher_config() -> dict:
    return load_yaml("dagster.k8s.yaml")["run_launcher"]["config"]


def test_k8s_run_launcher_config_passes_its_schema() -> None:
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), k8s_launcher_config())
    assert result.success, [error.message for error in result.errors or []]
    config = result.value
    assert config is not None
    assert config["load_incluster_config"] is True
    assert config["env_secrets"] == ["aggregator-dagster-db", "aggregator-runs", "aggregator-compute-logs",
                                     "aggregator-specs"]
    assert config["resources"]["requests"] and config["resources"]["limits"]


@pytest.mark.parametrize(
    ("mutation", "fragment"),
    [
        (lambda c: c.pop("instance_config_map"), "instance_config_map"),
        (lambda c: c.update(resource=c.pop("resources")), "resource"),
        (lambda c: c.update(env_secrets="aggregator-env"), "env_secrets"),
    ],
    ids=["missing-required", "misspelled-key", "wrong-type"],
)
def test_k8s_run_launcher_schema_rejects_broken_config(mutation, fragment: str) -> None:
    """The schema check above has teeth: the same config with one mistake fails, naming the field."""
    config = k8s_launcher_config()
    mutation(config)
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), config)
    assert not result.success
    assert result.errors and any(fragment in error.message for error in result.errors)
