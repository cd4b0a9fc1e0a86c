"""Every command the deployment starts exists in the installed package and accepts the options it is given.

The commands are read from the artifacts themselves (Dockerfile CMD, compose commands and health checks, the
proxy Deployment, the Helm user-code deployment) and run with `--help` appended: click parses every option
name before answering --help, so a renamed or misspelled option fails here, not in production."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from aggregator_tests.deploy.helm import CHART, extract_helm, run_helm
from aggregator_tests.deploy.paths import DEPLOY, executable
from aggregator_tests.deploy.test_dockerfile import instructions


def dockerfile_commands() -> dict[str, list[str]]:
    (cmd,) = [rest for word, rest in instructions() if word == "CMD"]
    return {"Dockerfile CMD": json.loads(cmd)}


def unwrap(command: list[str]) -> list[str]:
    """The service's own command: after wait_for.py's `--`; image scripts (/opt/dagster/bin) as repository files."""
    if command[:2] == ["python", "/opt/dagster/bin/wait_for.py"]:
        command = command[command.index("--") + 1:]
    if command[:1] == ["python"] and command[1].startswith("/opt/dagster/bin/"):
        command = ["python", str(DEPLOY / "bin" / command[1].rsplit("/", 1)[1]), *command[2:]]
    # Compose substitutes ${VAR:-default} before the command runs; check with the default.
    return [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", arg) for arg in command]


def compose_commands() -> dict[str, list[str]]:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    out = {}
    for name, svc in services.items():
        if "data-aggregator" not in svc.get("image", ""):
            continue  # third-party images (PostgreSQL, Prometheus, Grafana) run their own binaries
        if "command" in svc and svc["command"][0] != "sh":
            out[f"compose {name}"] = unwrap(svc["command"])
        test = svc.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"] and test[1] != "python":
            out[f"compose {name} healthcheck"] = test[1:]
    return out


def kubernetes_commands() -> dict[str, list[str]]:
    """Every container command of our image in the chart, as `helm template` renders it."""
    helm = extract_helm(Path(tempfile.gettempdir()) / "aggregator-helm-entry-commands")
    home = Path(tempfile.mkdtemp(prefix="helm-home-"))
    result = run_helm(helm, "template", "aggregator", str(CHART), "--set", "pgbouncer.enabled=true", home=home)
    assert result.returncode == 0, result.stderr
    out = {}
    for obj in yaml.safe_load_all(result.stdout):
        if not obj or obj["kind"] not in ("Deployment", "Job", "CronJob"):
            continue
        spec = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
        for container in spec["template"]["spec"]["containers"]:
            if "data-aggregator" in container["image"]:
                out[f"helm {obj['metadata']['name']}"] = unwrap(container["command"])
    return out


COMMANDS = {**dockerfile_commands(), **compose_commands(), **kubernetes_commands()}


def test_the_commands_the_brief_names_are_covered() -> None:
    firsts = {tuple(cmd[:2]) for cmd in COMMANDS.values()}
    assert {("aggregator", "proxy"), ("dagster", "code-server"), ("dagster-webserver", "-h"),
            ("dagster-daemon", "run"), ("dagster", "api"), ("dagster-webserver", "--host"),
            ("aggregator", "worker"), ("aggregator", "metrics"), ("aggregator", "specs")} <= firsts


@pytest.mark.parametrize("where", sorted(COMMANDS))
def test_command_exists_with_these_options(where: str) -> None:
    program, *args = COMMANDS[where]
    result = subprocess.run([executable(program) if program != "python" else sys.executable, *args, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{where}: {' '.join(COMMANDS[where])}\n{result.stdout}{result.stderr}"
    assert "usage:" in result.stdout.lower()


def test_a_wrong_option_fails_the_same_check() -> None:
    """The --help check is not vacuous: an option the command does not have is reported."""
    result = subprocess.run([executable("dagster"), "code-server", "start", "--no-such-option", "--help"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0 and "no-such-option" in result.stderr
