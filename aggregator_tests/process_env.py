"""The environment a test gives a platform process it starts (`aggregator dev`, a webserver, a run)."""

from __future__ import annotations

import os

# What the suite grants every connector (conftest.py `egress_for_tests`): loopback servers and pytest's
# temporary directories. A child started without them would refuse the suite's own test servers.
SUITE_GRANTS = ("AGGREGATOR_ALLOWED_NETWORKS", "AGGREGATOR_DATA_ROOTS")


def platform_env(**extra: str) -> dict[str, str]:
    """os.environ without the outer process's Dagster and platform settings (a test's child must not inherit
    another test's instance, home or pipelines), but with the suite's egress grants, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "AGGREGATOR_")) or k in SUITE_GRANTS}
    env.update(extra)
    return env
