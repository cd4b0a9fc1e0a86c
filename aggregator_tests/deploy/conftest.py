"""Fixtures of the deployment tests."""

from aggregator_tests.deploy.helm import helm  # noqa: F401  (a fixture, used by name)
from aggregator_tests.deploy.kube_api import in_cluster  # noqa: F401  (a fixture, used by name)
