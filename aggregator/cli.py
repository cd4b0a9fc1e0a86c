"""The `aggregator` command.

Every command imports what it needs inside its function: `aggregator --help` and the light commands must not
pay for pydantic, SQLAlchemy, argon2 or Dagster (seconds on a busy machine, newcomer review 14).
"""

from __future__ import annotations

import sys

import click

from aggregator.alerts.cli import register_commands as register_alert_commands
from aggregator.logs.cli import register_commands as register_log_commands
from aggregator.metrics.cli import register_commands as register_metrics_commands
from aggregator.pipelines.commands import register_commands as register_spec_commands
from aggregator.proxy.cli import register_commands as register_proxy_commands
from aggregator.specstore.commands import register_specs_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Data Aggregator: declarative pipelines on Dagster."""
    from aggregator.logs.json_format import configure_logging

    configure_logging()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface the web UI binds to.")
@click.option("--port", default=3000, show_default=True, type=int, help="Port of the web UI.")
def dev(host: str, port: int) -> None:
    """Run the platform locally: Dagster webserver and daemon with the sample pipelines."""
    from aggregator.dev import PortInUseError, SpecStoreUrlError, run_dev
    from aggregator.settings import load_settings

    try:
        code = run_dev(load_settings(), host, port)
    except (PortInUseError, SpecStoreUrlError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; only the proxy calls it.")
@click.option("--port", default=3002, show_default=True, type=int, help="Port to listen on.")
def worker(host: str, port: int) -> None:
    """Run the worker: connection checks, discovery and previews for the API, in the pipelines' environment
    (AGGREGATOR_WORKER_TOKEN authenticates the proxy)."""
    from aggregator.worker.app import serve

    try:
        serve(host, port)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


# Command groups live beside what they operate on.
register_spec_commands(main)
register_specs_commands(main)
register_proxy_commands(main)
register_alert_commands(main)
register_metrics_commands(main)
register_log_commands(main)

if __name__ == "__main__":
    main()
