"""Alert sensors for the code location, present only when some alert rule is declared."""

from __future__ import annotations

import dagster as dg

from aggregator.alerts.sensors import build_alert_sensors
from aggregator.alerts.setup import alert_setup_partial
from aggregator.pipelines.load import SpecError, Specs
from aggregator.settings import Settings


def alert_definitions(specs: Specs, settings: Settings) -> tuple[dg.Definitions, list[SpecError]]:
    """The alert sensors, and the problems of rules that were left out (reported like spec errors)."""
    setup, errors = alert_setup_partial(specs)
    if not setup.enabled:
        return dg.Definitions(), errors
    return dg.Definitions(sensors=build_alert_sensors(setup, settings)), errors
