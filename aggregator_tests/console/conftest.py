"""Fixtures of the Console tests: its sources installed from the lock file, where screenshots go, and Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.proxy.routes.console import CONSOLE_DIST
from aggregator_tests.console.browser import ARGS, CHROMIUM

SOURCES = CONSOLE_DIST.parent
# Everything the build reads; node_modules and dist are made in the copy.
INPUTS = ("package.json", "package-lock.json", "index.html", "vite.config.ts", "tsconfig.json", "src")


def npm(args: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def console_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Console's sources in a fresh directory with exactly the locked dependencies installed (`npm ci`)."""
    if shutil.which("npm") is None:
        pytest.fail("npm (Node.js 20) is needed for the Console's tests", pytrace=False)
    root = tmp_path_factory.mktemp("console") / "console"
    root.mkdir()
    for name in INPUTS:
        source = SOURCES / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy2(source, root / name)
    npm(["npm", "ci", "--no-audit", "--no-fund"], root, 900)
    yield root


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AGGREGATOR_TEST_ARTIFACTS/console when set (CI keeps it), else a directory under pytest's tmp."""
    base = os.environ.get("AGGREGATOR_TEST_ARTIFACTS")
    path = Path(base) / "console" if base else tmp_path_factory.mktemp("artifacts") / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()
