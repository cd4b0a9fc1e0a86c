"""Tests that need a system tool (bubblewrap, promtool, pgbouncer): skipped on a developer machine without it,
never in CI (`CI=true`, set by .ci/run, which installs them): there a missing tool fails the test."""

from __future__ import annotations

import os

import pytest


def needs_tool(found: object, reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(found is None and os.environ.get("CI") != "true", reason=reason)
