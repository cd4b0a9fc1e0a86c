"""The platform's Dagster instance for commands that read it (`metrics serve`, `logs search`).

DAGSTER_HOME wins when it is set; otherwise it is `$AGGREGATOR_HOME/dagster`, the instance `aggregator dev`
creates, so these commands work with AGGREGATOR_HOME alone, like the rest of the CLI."""

from __future__ import annotations

import click
import dagster as dg

from aggregator.settings import Settings, load_settings


def open_instance(settings: Settings | None = None) -> dg.DagsterInstance:
    """The instance at `settings.dagster_home`; a clear error when there is none (never Dagster's raw message)."""
    home = (settings or load_settings()).dagster_home
    if not home.is_dir():
        raise click.ClickException(
            f"no Dagster instance at {home}: start the platform once (`aggregator dev`), or set DAGSTER_HOME "
            "(or AGGREGATOR_HOME) to the instance's directory"
        )
    return dg.DagsterInstance.from_config(str(home))
