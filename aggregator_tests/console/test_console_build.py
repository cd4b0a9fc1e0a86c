"""The shipped Console build is what its sources and lock file build, and its Vitest suite passes.

`aggregator dev` needs no Node.js: the built app is committed in `aggregator/console/dist/` and ships in the
wheel. These tests copy the sources to a temporary directory, install exactly the lock file (`npm ci`), build
there and compare byte for byte, so a change to the sources without a rebuild (or a build from other
dependencies) fails. They need npm; in CI (`CI=true`) a missing npm fails instead of skipping.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest

from aggregator.proxy.routes.console import CONSOLE_DIST
from aggregator_tests.console.conftest import npm
from aggregator_tests.tools import needs_tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500),
              needs_tool(shutil.which("npm"), "npm (Node.js 20) is needed to build the Console")]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_shipped_build_is_what_the_sources_build(console_checkout: Path) -> None:
    npm(["npm", "run", "build"], console_checkout, 900)
    built = console_checkout / "dist"
    assert _tree(built) == _tree(CONSOLE_DIST), (
        "aggregator/console/dist differs from a fresh build: run `npm ci && npm run build` in aggregator/console "
        "and commit dist/")
    differ = [name for name in _tree(built) if not filecmp.cmp(built / name, CONSOLE_DIST / name, shallow=False)]
    assert not differ, f"files differ from a fresh build (rebuild and commit dist/): {differ}"


def test_vitest_suite_passes(console_checkout: Path) -> None:
    result = npm(["npx", "vitest", "run", "--reporter=verbose"], console_checkout, 900)
    assert " passed" in result.stdout and " failed" not in result.stdout, result.stdout
