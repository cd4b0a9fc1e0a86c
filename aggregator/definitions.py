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
from aggregator.settings import load_settings
from aggregator.specstore.pinning import pinned_texts


@dg.definitions
def defs() -> dg.Definitions:
    """The specs come from the spec store. The code server loads its newest revision and records it (with a
    digest) in the reconstruction metadata; every process that reconstructs this location for a run loads
    exactly that revision (specstore/pinning.py), so a spec written mid-run never changes or fails the run."""
    settings = load_settings()
    # The pin (revision + digest) goes into the load context's reconstruction metadata, which Dagster stores
    # with every run's plan (`Definitions.with_reconstruction_metadata` would add the same, as a preview API).
    texts, _pin = pinned_texts(settings)
    # A broken spec file drops only its own pipelines (as Airflow drops a DAG file with an import error); every
    # problem stays visible as platform/spec_errors and in `aggregator validate`.
    loaded = load_isolated(settings.pipelines_dir, settings, texts)
    for error in loaded.errors:
        logging.getLogger(__name__).warning("pipeline spec problem: %s", error)

    # Alert rules with problems (an unknown channel) are left out and reported with the other spec errors.
    sensors, alert_errors = alert_sensors(loaded.specs, settings)
    for error in alert_errors:
        logging.getLogger(__name__).warning("alert rule problem: %s", error)

    return dg.Definitions.merge(
        compile_graph(loaded.graph, loaded.resources),
        spec_error_definitions([*loaded.errors, *alert_errors], loaded.dropped),
        dg.Definitions(sensors=sensors),
        # The samples' Python assets load only with the pipeline they read (sales), so any other pipelines
        # directory materializes with `--select '*'`.
        dg.Definitions(assets=assets_with_deps_in(dg.load_assets_from_modules([sales_assets]), loaded.graph)),
    )
