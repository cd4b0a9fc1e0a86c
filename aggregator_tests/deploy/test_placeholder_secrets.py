"""Placeholder secrets (`change-me…`) are refused at start (issue 19, minor 13): Compose's `${VAR:?}` catches only
empty values, so an old `.env` with the example's `change-me-*` passwords brought a stack up. PostgreSQL's
entrypoint check (postgres-init/00-refuse-placeholders.sh) refuses them before initdb; every other container that
holds a secret starts through deploy/bin/wait_for.py, which refuses the same values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator_tests.deploy.paths import DEPLOY
from aggregator_tests.deploy.test_compose import PASSWORDS, run_config

sys.path.insert(0, str(DEPLOY / "bin"))
try:
    import wait_for
finally:
    sys.path.remove(str(DEPLOY / "bin"))

ENTRYPOINT_CHECK = DEPLOY / "postgres-init" / "00-refuse-placeholders.sh"
WAIT_FOR = DEPLOY / "bin" / "wait_for.py"

# (value, is it a placeholder?): both implementations must agree with every line.
CORPUS = [
    ("change-me", True), ("change-me-dagster", True), ("CHANGE_ME", True), ("changeme123", True),
    ("Change Me", True), ("replace-me", True), ("fill_me_in", True), ("password", True), ("Secret", True),
    ("placeholder", True),
    ("3f9c1e0b7a6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d", False), ("correct-horse-battery", False),
    ("passwords-are-long", False), ("my-change-me", False), ("secret-sauce-42", False),
]


def entrypoint_check(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT_CHECK), *command], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=60, check=False)


@pytest.mark.parametrize(("value", "placeholder"), CORPUS)
def test_both_checks_agree_on_what_a_placeholder_is(value: str, placeholder: bool) -> None:
    assert bool(wait_for.placeholder_secrets({"DAGSTER_DB_PASSWORD": value})) is placeholder
    url = f"postgresql+psycopg://warehouse:{value}@postgres:5432/warehouse"
    assert bool(wait_for.placeholder_secrets({"AGGREGATOR_WAREHOUSE_URL": url})) is placeholder
    result = entrypoint_check({"DAGSTER_DB_PASSWORD": value}, "true")
    assert (result.returncode != 0) is placeholder, result.stderr
    if placeholder:
        assert "DAGSTER_DB_PASSWORD" in result.stderr


def test_the_entrypoint_check_execs_the_images_entrypoint_and_only_checks_when_sourced(tmp_path: Path) -> None:
    """As the entrypoint it execs its arguments; sourced by the image's init loop (a function whose arguments are
    the init files) it must not exec them, only check."""
    assert entrypoint_check({"POSTGRES_PASSWORD": "a-real-one"}, "echo", "started").stdout.strip() == "started"
    loop = tmp_path / "entrypoint.sh"
    loop.write_text('process_init_files() { for f; do . "$f"; done; echo "init done"; }\n'
                    f'process_init_files {ENTRYPOINT_CHECK}\n')
    sourced = subprocess.run(["sh", str(loop)], capture_output=True, text=True, timeout=60, check=False,
                             env={"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "a-real-one"})
    assert sourced.returncode == 0 and sourced.stdout.strip() == "init done", sourced.stderr


def placeholder_config(tmp_path: Path) -> dict:
    """`docker compose config` with deploy/.env.example filled with `change-me-*` (the old example's values)."""
    lines = []
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}=change-me-{name.lower()}" if name in PASSWORDS else line)
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n")
    result = run_config(tmp_path, env_file=env_file)
    assert result.returncode == 0, "compose-go cannot refuse a value, only an empty one: " + result.stderr
    return json.loads(result.stdout)


def test_no_compose_service_starts_with_a_placeholder_secret(tmp_path: Path) -> None:
    """Every service handed a secret from deploy/.env refuses a placeholder when it starts, naming the variable:
    PostgreSQL through its entrypoint check, every other one through wait_for.py in front of its command."""
    services = placeholder_config(tmp_path)["services"]
    holding = {name for name, svc in services.items()
               if any("change-me" in str(v) for v in (svc.get("environment") or {}).values())}
    assert {"postgres", "proxy", "worker", "code-server", "webserver", "daemon", "migrate"} <= holding
    for name in sorted(holding):
        svc = services[name]
        env = {k: str(v) for k, v in svc["environment"].items()}
        if name == "postgres":
            assert Path(svc["entrypoint"][1]).name == ENTRYPOINT_CHECK.name
            assert svc["entrypoint"][2:] == ["docker-entrypoint.sh"] and svc["command"] == ["postgres"]
            result = entrypoint_check(env, "true")
        elif name == "backup":
            # pg_dump as aggregator_backup: that role's password was refused by PostgreSQL's check when the roles
            # were created, and backup.sh runs in the postgres image, which has no wait_for.py.
            continue
        else:
            assert svc["command"][:2] == ["python", "/opt/dagster/bin/wait_for.py"], name
            # Only the placeholder check: it runs before any dependency check, so no service needs to be up.
            result = subprocess.run([sys.executable, str(WAIT_FOR), "--", "true"], capture_output=True, text=True,
                                    env={"PATH": os.environ["PATH"], **env}, timeout=60, check=False)
        assert result.returncode != 0, f"{name} starts with placeholder secrets"
        assert "placeholder" in result.stderr and any(k in result.stderr for k in env), result.stderr


def test_wait_for_starts_the_command_with_real_secrets() -> None:
    env = {"PATH": os.environ["PATH"], "AGGREGATOR_ADMIN_PASSWORD": "3f9c1e0b7a6d5c4b",
           "DAGSTER_PG_URL": "postgresql://dagster:9e8d7c6b5a4f@postgres:5432/dagster"}
    result = subprocess.run([sys.executable, str(WAIT_FOR), "--", sys.executable, "-c", "print('started')"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "started", result.stderr
