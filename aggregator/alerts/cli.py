"""`aggregator alerts list|test`: the alert history and a test message through one channel."""

from __future__ import annotations

import click


def register_commands(main: click.Group) -> None:
    main.add_command(alerts)


@click.group()
def alerts() -> None:
    """Alert history and channel tests (channels and rules live in the spec files' `alerts:` blocks)."""


@alerts.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="Newest rows shown.")
@click.option("--pipeline", default=None, help="Only alerts of this pipeline.")
@click.option("--status", type=click.Choice(["sent", "failed", "deduplicated", "resolved", "held"]), default=None,
              help="Only rows with this status.")
def list_alerts(limit: int, pipeline: str | None, status: str | None) -> None:
    """List the alert history, newest first."""
    from aggregator.alerts.history import AlertStore, alerts_db_url
    from aggregator.settings import load_settings

    store = AlertStore(alerts_db_url(load_settings().home))
    try:
        rows = store.history(limit=limit, pipeline=pipeline, status=status)
    finally:
        store.dispose()
    if not rows:
        click.echo("no alerts recorded")
        return
    for row in rows:
        where = " ".join(p for p in (row.pipeline or "-", row.channel or "-", row.run_id or "-"))
        detail = f"  ({row.detail})" if row.detail else ""
        click.echo(f"{row.at:%Y-%m-%d %H:%M:%S}  {row.status:<12} {row.kind:<13} {where}  {row.title}{detail}")


@alerts.command("test")
@click.argument("channel")
def test_channel(channel: str) -> None:
    """Send a sample alert through CHANNEL and record the outcome."""
    from aggregator.alerts.deliver import send_test
    from aggregator.alerts.history import AlertStore, alerts_db_url
    from aggregator.pipelines.alert_setup import build_alert_setup
    from aggregator.pipelines.load import SpecErrors, load_specs
    from aggregator.settings import load_settings

    settings = load_settings()
    try:
        setup = build_alert_setup(load_specs(settings.pipelines_dir))
    except SpecErrors as exc:
        raise click.ClickException(str(exc)) from exc
    config = setup.config
    if channel not in config.channels:
        raise click.ClickException(
            f"unknown channel {channel!r}; declared under alerts.channels: {', '.join(sorted(config.channels)) or 'none'}"
        )
    message, result = send_test(channel, config)
    store = AlertStore(alerts_db_url(settings.home))
    try:
        store.record_test(channel=channel, title=message.title, subject=message.subject, delivered=result.ok,
                          attempts=result.attempts, error=result.error)
    finally:
        store.dispose()
    if not result.ok:
        raise click.ClickException(f"channel {channel}: not delivered after {result.attempts} attempt(s): {result.error}")
    click.echo(f"channel {channel}: delivered (attempt {result.attempts})")
