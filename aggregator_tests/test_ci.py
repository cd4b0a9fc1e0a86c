"""CI enforces lint, the security scan and types (issue 11 item 12), and still runs the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"\*\*Run the tests\*\*.*?```bash\n(.*?)\n```", readme, re.DOTALL)
    assert match, "README.md lost its **Run the tests** block"
    return match.group(1).strip()


def test_ci_checks_the_tree_before_running_the_readme_test_command() -> None:
    """Issue 11 item 12: ruff and mypy were configured but nothing ran them. `.ci/run` (which the GitHub
    workflow calls) must run both over the whole tree before the tests, and end with the README's test
    command verbatim, so CI proves what a new user is told to run."""
    commands = _commands((ROOT / ".ci" / "run").read_text())
    assert commands[-1] == _readme_test_command()
    lint, types = commands.index(".venv/bin/ruff check ."), commands.index(".venv/bin/mypy .")
    fresh = commands.index("rm -rf .venv")
    assert fresh < lint < len(commands) - 1 and fresh < types < len(commands) - 1
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert re.search(r"^\s*run: \.ci/run\s*$", workflow, re.MULTILINE)


def test_bandit_rules_are_on_and_never_ignored_wholesale() -> None:
    """The `S` rules are selected; an exception names its rule (S608), never the whole set, and outside the
    tests it is scoped to specific files, not the source packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lint = config["tool"]["ruff"]["lint"]
    assert "S" in lint["extend-select"]
    assert not {"S", "ALL"} & set(lint.get("ignore", []))
    for pattern, codes in lint.get("per-file-ignores", {}).items():
        assert all(re.fullmatch(r"S\d{3}", c) for c in codes if c.startswith("S")), (pattern, codes)
        assert not {"S", "ALL"} & set(codes), pattern
        if not pattern.startswith(("aggregator_tests/", "bench/")):
            assert pattern.endswith(".py") and "*" not in pattern, f"{pattern}: scope a source exception to a file"


def test_lint_tools_are_pinned() -> None:
    """A new ruff or mypy release can add findings; CI fails on any, so the versions change only on purpose."""
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    pins = {re.split(r"[=<>!~]", d)[0]: d for d in dev}
    assert re.fullmatch(r"ruff==[\d.]+", pins["ruff"]) and re.fullmatch(r"mypy==[\d.]+", pins["mypy"])
