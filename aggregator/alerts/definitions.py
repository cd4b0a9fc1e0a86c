"""Alert sensors for the code location, present only when some alert rule is declared."""

from __future__ import annotations

import dagster as dg

from aggregator.alerts.sensors import build_alert_sensors
from aggregator.alerts.setup import build_alert_setup
from aggregator.pipelines.load import Specs
from aggregator.settings import Settings


def alert_definitions(specs: Specs, settings: Settings) -> dg.Definitions:
    setup = build_alert_setup(specs)
    if not setup.enabled:
        return dg.Definitions()
    return dg.Definitions(sensors=build_alert_sensors(setup, settings))
