"""The code location: pipelines compiled from specs, plus Python-defined assets. Wiring only."""

from __future__ import annotations

import dagster as dg

from aggregator import assets
from aggregator.alerts.definitions import alert_definitions
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings

settings = load_settings()

# A broken spec fails the code location with every problem listed (file:line: field: message), rather than
# dropping the pipeline: a silently missing pipeline would also silently stop its schedule.
specs = load_specs(settings.pipelines_dir)
defs = dg.Definitions.merge(
    build_definitions(specs, settings),
    alert_definitions(specs, settings),
    dg.Definitions(assets=dg.load_assets_from_modules([assets])),
)
