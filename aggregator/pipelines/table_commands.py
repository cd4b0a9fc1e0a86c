"""`aggregator tables preview`: look at the rows behind an asset, sensitive columns masked."""

from __future__ import annotations

import click

from aggregator.pipelines.cli_format import text_table


@click.group()
def tables() -> None:
    """Look at the tables the pipelines build."""


@tables.command("preview")
@click.argument("asset")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 10_000), help="Rows to show.")
def tables_preview(asset: str, limit: int) -> None:
    """The first rows of ASSET's table (ASSET as `pipeline/name`); columns the spec declares as
    `sensitive_columns` are masked."""
    from aggregator.pipelines.graph import destination_key
    from aggregator.pipelines.isolate import load_isolated
    from aggregator.pipelines.preview import sample
    from aggregator.settings import load_settings

    settings = load_settings()
    loaded = load_isolated(settings.pipelines_dir, settings)
    pipeline, _, name = asset.partition("/")
    node = loaded.graph.nodes.get((pipeline, name))
    if node is None:
        known = ", ".join(sorted(f"{p}/{n}" for p, n in loaded.graph.nodes)) or "none"
        raise click.ClickException(f"unknown asset {asset!r}; known: {known}")
    destination = loaded.resources[destination_key(node.pipeline.destination)]
    import sqlalchemy as sa

    try:
        columns, rows = sample(destination, node.table, limit, node.spec.sensitive_columns)
    except sa.exc.DBAPIError as exc:
        raise click.ClickException(
            f"cannot read table {node.table} of {asset} in {destination.display_url}: {str(exc.orig).splitlines()[0]} "
            "(has it been materialized?)"
        ) from exc
    if not rows:
        click.echo(f"{node.table} is empty")
        return
    click.echo(text_table([tuple("NULL" if v is None else v for v in row) for row in rows], tuple(columns)))
