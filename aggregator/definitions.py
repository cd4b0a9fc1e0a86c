"""The code location: pipelines compiled from specs, plus Python-defined assets. Wiring only."""

from __future__ import annotations

import logging

import dagster as dg

from aggregator.alerts.definitions import alert_sensors
from aggregator.examples import sales_assets
from aggregator.pipelines.compile import compile_graph
from aggregator.pipelines.isolate import load_isolated
from aggregator.pipelines.platform_assets import spec_error_definitions
from aggregator.pipelines.python_assets import assets_with_deps_in
from aggregator.pipelines.snapshot import pinned_texts
from aggregator.settings import load_settings

settings = load_settings()

# A broken spec file drops only its own pipelines (as Airflow drops a DAG file with an import error); every
# problem stays visible as platform/spec_errors and in `aggregator validate`. Runs load the snapshot of the
# specs their code server loaded, so a file saved mid-run never changes or fails a running run.
loaded = load_isolated(settings.pipelines_dir, settings, pinned_texts(settings.pipelines_dir, settings.home))
for _error in loaded.errors:
    logging.getLogger(__name__).warning("pipeline spec problem: %s", _error)

# Alert rules with problems (an unknown channel) are left out and reported with the other spec errors.
sensors, alert_errors = alert_sensors(loaded.specs, settings)
for _error in alert_errors:
    logging.getLogger(__name__).warning("alert rule problem: %s", _error)

defs = dg.Definitions.merge(
    compile_graph(loaded.graph, loaded.resources),
    spec_error_definitions([*loaded.errors, *alert_errors], loaded.dropped),
    dg.Definitions(sensors=sensors),
    # The samples' Python assets load only with the pipeline they read (sales), so any other pipelines
    # directory materializes with `--select '*'`.
    dg.Definitions(assets=assets_with_deps_in(dg.load_assets_from_modules([sales_assets]), loaded.graph)),
)
