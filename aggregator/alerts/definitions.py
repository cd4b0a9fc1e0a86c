"""Alert sensors for the code location, present only when some alert rule is declared."""

from __future__ import annotations

import dagster as dg

from aggregator.alerts.sensors import build_alert_sensors
from aggregator.pipelines.alert_setup import alert_setup_partial
from aggregator.pipelines.load import SpecError, Specs
from aggregator.settings import Settings


def alert_sensors(specs: Specs, settings: Settings) -> tuple[list[dg.SensorDefinition], list[SpecError]]:
    """The alert sensors, and the problems of rules that were left out (reported like spec errors).

    Sensors, not a Definitions object: a second Definitions at module scope of the code location is an
    error in Dagster."""
    setup, errors = alert_setup_partial(specs)
    if not setup.enabled:
        return [], errors
    return build_alert_sensors(setup, settings), errors
