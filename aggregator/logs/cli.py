"""`aggregator logs search`: run logs across runs from the Dagster instance (DAGSTER_HOME)."""

from __future__ import annotations

import datetime as dt
import json

import click


def register_commands(main: click.Group) -> None:
    main.add_command(logs)


@click.group()
def logs() -> None:
    """Search run logs across runs."""


@logs.command("search")
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--run", "run_id", default=None, help="Only this run id.")
@click.option("--level", default=None, type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                                                         case_sensitive=False), help="Lowest level shown.")
@click.option("--text", default=None, help="Case-insensitive substring of the message.")
@click.option("--since", default=None, type=click.DateTime(), help="Events at or after this time (UTC).")
@click.option("--until", default=None, type=click.DateTime(), help="Events before this time (UTC).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="Events per page.")
@click.option("--cursor", default=None, help="The `next page` cursor printed by the previous call.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def search(pipeline: str | None, run_id: str | None, level: str | None, text: str | None,
           since: dt.datetime | None, until: dt.datetime | None, limit: int, cursor: str | None,
           as_json: bool) -> None:
    """Newest matching events first; prints a cursor for the next page when there is one."""
    from pydantic import ValidationError

    from aggregator.dagster_instance import open_instance
    from aggregator.logs.search import LogQuery, search_logs

    try:
        query = LogQuery(pipeline=pipeline, run_id=run_id, level=level, text=text, since=since, until=until,
                         limit=limit, cursor=cursor)
    except ValidationError as exc:
        raise click.BadParameter(str(exc.errors()[0]["msg"])) from exc
    with open_instance() as instance:
        page = search_logs(instance, query)
    for line in page.lines:
        if as_json:
            click.echo(json.dumps(line.to_json()))
        else:
            when = dt.datetime.fromtimestamp(line.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            click.echo(f"{when} {line.level:<8} {line.run_id[:8]} {line.step_key or '-'}  {line.message}")
    if page.next_cursor:
        click.echo(f"next page: --cursor {page.next_cursor}", err=True)
