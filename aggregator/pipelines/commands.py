"""CLI commands for specs: validate, connections check/discover, pipelines list/show, schema."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from aggregator.settings import load_settings


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _specs_and_resources() -> tuple[Any, dict[str, Any]]:
    from aggregator.pipelines.compile import build_resources
    from aggregator.pipelines.load import SpecErrors, load_specs

    settings = load_settings()
    try:
        specs = load_specs(settings.pipelines_dir)
        return specs, build_resources(specs, settings)
    except SpecErrors as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers calm


def _table(rows: Sequence[tuple[Any, ...]], headers: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*headers), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)])


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--warehouse", is_flag=True,
              help="Also prepare (EXPLAIN) every transform against the destination's current tables; runs nothing.")
def validate(path: Path | None, warehouse: bool) -> None:
    """Check every spec under PATH (default AGGREGATOR_PIPELINES) without running anything."""
    from aggregator.pipelines.validate import validate as run_validate

    settings = load_settings()
    report = run_validate(path or settings.pipelines_dir, settings, warehouse=warehouse)
    if not report.ok:
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        _fail(f"{len(report.errors)} problem(s) found")
    assert report.specs is not None
    click.echo(f"ok: {len(report.specs.pipelines)} pipeline(s), {len(report.specs.connections)} connection(s) in "
               f"{len(report.specs.files)} file(s)")


@click.group()
def connections() -> None:
    """Inspect the connections declared in the specs."""


def _connection(name: str) -> tuple[Any, Any]:
    """The specs and the resource built for connection `name`; a clear error if it is not declared."""
    specs, resources = _specs_and_resources()
    if name not in specs.connections:
        _fail(f"unknown connection {name!r}; declared: {', '.join(sorted(specs.connections)) or 'none'}")
    return specs, resources[name]


@connections.command("check")
@click.argument("name")
def connections_check(name: str) -> None:
    """Prove connection NAME can reach what it needs."""
    from connectors.errors import ConnectorError

    _, resource = _connection(name)
    try:
        click.echo(f"ok: {resource.check()}")
    except (ConnectorError, OSError) as exc:
        _fail(f"connection {name!r} failed its check: {exc}")


@connections.command("discover")
@click.argument("name")
def connections_discover(name: str) -> None:
    """List the streams/tables behind connection NAME with their columns and types."""
    from connectors.errors import ConnectorError

    specs, resource = _connection(name)
    streams = [s.stream for p, _, _ in specs.pipelines for s in p.sources if s.connection == name]
    rows: list[tuple[str, ...]] = []
    try:
        for stream_name, columns in _discover(resource, streams).items():
            rows.extend((stream_name, column, str(ctype)) for column, ctype in columns.items())
    except (ConnectorError, OSError) as exc:
        _fail(f"discovery on {name!r} failed: {exc}")
    click.echo(_table(rows, ("stream", "column", "type")) if rows else "nothing discovered")


def _discover(resource: Any, streams: list[Any]) -> dict[str, dict[str, Any]]:
    """{stream: {column: type}}: what the connector finds on its own, else what the specs' streams read."""
    import inspect

    params = inspect.signature(resource.discover).parameters
    needs_stream = any(p.default is inspect.Parameter.empty for p in params.values())
    infos = [i for s in streams for i in resource.discover(s)] if needs_stream else list(resource.discover())
    return {info.name: {c: getattr(t, "value", t) for c, t in info.columns.items()} for info in infos}


@click.group()
def pipelines() -> None:
    """Inspect the compiled pipelines."""


@pipelines.command("list")
def pipelines_list() -> None:
    """One line per pipeline: assets (as the UI counts them), schedule, sensor."""
    import dagster as dg

    from aggregator.examples import sales_assets
    from aggregator.pipelines.isolate import load_isolated
    from aggregator.pipelines.python_assets import assets_with_deps_in

    settings = load_settings()
    loaded = load_isolated(settings.pipelines_dir, settings)
    # The UI counts Python assets in a pipeline's group too (the samples' sales/region_leaderboard).
    python_assets = assets_with_deps_in(dg.load_assets_from_modules([sales_assets]), loaded.graph)
    groups = [spec.group_name for asset in python_assets for spec in asset.specs]
    rows = [
        (p.name, str(len(p.sources) + len(p.transforms) + groups.count(p.name)),
         f"{p.schedule.cron} {p.schedule.timezone}{'' if p.schedule.enabled else ' (off)'}" if p.schedule else "-",
         "yes" if p.sensor else "-", str(sf.path))
        for p, sf, _ in loaded.specs.pipelines
    ]
    click.echo(_table(rows, ("pipeline", "assets", "schedule", "sensor", "file")))
    if loaded.errors:
        click.echo(f"\n{len(loaded.errors)} spec problem(s); pipelines not loaded: "
                   f"{', '.join(loaded.dropped) or 'none'}; `aggregator validate` lists them", err=True)


@pipelines.command("show")
@click.argument("name")
def pipelines_show(name: str) -> None:
    """The assets, checks, schedule and sensor compiled from pipeline NAME."""
    from aggregator.pipelines.isolate import load_isolated

    settings = load_settings()
    loaded = load_isolated(settings.pipelines_dir, settings)  # a broken other file does not hide this one
    specs, graph = loaded.specs, loaded.graph
    try:
        pipeline = specs.pipeline(name)
    except KeyError:
        problems = [str(e) for e in loaded.errors if e.pipeline == name or name in loaded.dropped]
        detail = ("; it is not loaded because of:\n  " + "\n  ".join(problems)) if name in loaded.dropped else ""
        _fail(f"unknown pipeline {name!r}; known: {', '.join(p.name for p, _, _ in specs.pipelines)}{detail}")
    click.echo(f"pipeline {pipeline.name}: {pipeline.description or ''}")
    click.echo(f"  job:       {pipeline.name}_job")
    click.echo(f"  schedule:  {pipeline.schedule.cron + ' ' + pipeline.schedule.timezone if pipeline.schedule else '-'}")
    click.echo(f"  sensor:    {pipeline.sensor.directory + '/' + pipeline.sensor.pattern if pipeline.sensor else '-'}")
    click.echo(f"  partitions:{' ' + pipeline.partitions.grain if pipeline.partitions else ' -'}")
    rows = []
    for node in graph.pipeline_nodes(name):
        deps = ", ".join(u.key.to_user_string() for u in node.upstream.values()) or "-"
        checks = ", ".join(c.name or c.default_name() for c in node.spec.checks) or "-"
        rows.append((node.key.to_user_string(), "source" if node.is_source else "transform", node.table, deps, checks))
    click.echo(_table(rows, ("asset", "kind", "table", "upstream", "checks")))


@click.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
def schema(output: Path | None) -> None:
    """Print the JSON Schema of spec files (for editor autocompletion)."""
    from aggregator.pipelines.json_schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)


def register_commands(main: click.Group) -> None:
    from aggregator.pipelines.table_commands import tables

    for command in (validate, connections, pipelines, schema, tables):
        main.add_command(command)
