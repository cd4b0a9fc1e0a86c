"""The shipped Console build is what its sources and lock file build, and its Vitest suite passes.

`aggregator dev` needs no Node.js: the built app is committed in `aggregator/console/dist/` and ships in the
wheel. These tests copy the sources to a temporary directory, install exactly the lock file (`npm ci`), build
there and compare byte for byte, so a change to the sources without a rebuild (or a build from other
dependencies) fails. They need npm; in CI (`CI=true`) a missing npm fails instead of skipping.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.proxy.routes.console import CONSOLE_DIST
from aggregator_tests.tools import needs_tool
from scripts.console_fixtures import FIXTURE, connector_types_json

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500),
              needs_tool(shutil.which("npm"), "npm (Node.js 20) is needed to build the Console")]

SOURCES = CONSOLE_DIST.parent
# Everything the build reads; node_modules and dist are made here.
INPUTS = ("package.json", "package-lock.json", "index.html", "vite.config.ts", "tsconfig.json", "src")


def _npm(args: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Console's sources in a fresh directory with exactly the locked dependencies installed."""
    root = tmp_path_factory.mktemp("console") / "console"
    root.mkdir()
    for name in INPUTS:
        source = SOURCES / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    _npm(["npm", "ci", "--no-audit", "--no-fund"], root, 900)
    yield root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_shipped_build_is_what_the_sources_build(checkout: Path) -> None:
    _npm(["npm", "run", "build"], checkout, 900)
    built = checkout / "dist"
    assert _tree(built) == _tree(CONSOLE_DIST), (
        "aggregator/console/dist differs from a fresh build: run `npm ci && npm run build` in aggregator/console "
        "and commit dist/")
    differ = [name for name in _tree(built) if not filecmp.cmp(built / name, CONSOLE_DIST / name, shallow=False)]
    assert not differ, f"files differ from a fresh build (rebuild and commit dist/): {differ}"


def test_vitest_suite_passes(checkout: Path) -> None:
    result = _npm(["npx", "vitest", "run", "--reporter=verbose"], checkout, 900)
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout


def test_connector_type_fixture_is_current() -> None:
    """The form tests render every connector type from this file: it must be what the API serves now."""
    assert FIXTURE.read_text(encoding="utf-8") == connector_types_json(), (
        "aggregator/console/src/test/connector-types.json is stale: run `python scripts/console_fixtures.py`")
