"""CLI commands for specs: validate, connections check/discover, pipelines list/show, schema."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from aggregator.pipelines.cli_format import text_table


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _specs_and_resources() -> tuple[Any, dict[str, Any]]:
    from aggregator.pipelines.compile import build_resources
    from aggregator.pipelines.load import SpecErrors, load_specs
    from aggregator.settings import load_settings

    settings = load_settings()
    try:
        specs = load_specs(settings.pipelines_dir)
        return specs, build_resources(specs, settings)
    except SpecErrors as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers calm



@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--warehouse", is_flag=True,
              help="Also prepare (EXPLAIN) every transform against the destination's current tables; runs nothing.")
def validate(path: Path | None, warehouse: bool) -> None:
    """Check every spec under PATH (default AGGREGATOR_PIPELINES) without running anything."""
    from aggregator.pipelines.validate import validate as run_validate
    from aggregator.settings import load_settings

    settings = load_settings()
    # Here, in the pipelines' environment, validation may also say which allowed variables are unset.
    report = run_validate(path or settings.pipelines_dir, settings, os.environ, warehouse=warehouse)
    if not report.ok or report.specs is None:
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        _fail(f"{len(report.errors)} problem(s) found")
    for note in report.unchecked:
        click.echo(f"not checked: {note}", err=True)
    click.echo(f"ok: {len(report.specs.pipelines)} pipeline(s), {len(report.specs.connections)} connection(s) in "
               f"{len(report.specs.files)} file(s)")


@click.group()
def connections() -> None:
    """Inspect the connections declared in the specs."""


def _load_specs() -> tuple[Any, Any]:
    from aggregator.pipelines.load import SpecErrors, load_specs
    from aggregator.settings import load_settings

    settings = load_settings()
    try:
        return settings, load_specs(settings.pipelines_dir)
    except SpecErrors as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers calm


def _connection(name: str, *, for_discovery: bool = False) -> tuple[Any, Any]:
    """The specs and the resource for connection `name`, its `{env: NAME}` secrets resolved from this
    environment exactly as a run resolves them; one clear line if it is not declared or a secret is unset.

    `warehouse` is always a connection: the one declared under that name, else AGGREGATOR_WAREHOUSE_URL."""
    from pydantic import ValidationError

    from aggregator.destinations.sql import SqlDestination
    from aggregator.pipelines.connections import SecretReferenceError, build_destination, build_source
    from aggregator.pipelines.graph import WAREHOUSE
    from aggregator.pipelines.load import validation_errors
    from connectors.sql.resource import SqlResource, WarehouseReader

    settings, specs = _load_specs()
    declared = specs.connections.get(name)
    if declared is None and name != WAREHOUSE:
        known = sorted({*specs.connections, WAREHOUSE})
        _fail(f"unknown connection {name!r}; declared: {', '.join(known)}")
    try:
        if declared is None:
            url = settings.warehouse_url
            return specs, WarehouseReader(url=url) if for_discovery else SqlDestination(url=url)
        conn, sf = declared
        if name == WAREHOUSE and not for_discovery:
            return specs, build_destination(conn, resolve_as=name)
        source = build_source(conn, name)
        if name == WAREHOUSE and isinstance(source, SqlResource):
            return specs, WarehouseReader(url=source.url)  # the operator discovers the warehouse itself
        return specs, source
    except SecretReferenceError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail("; ".join(str(e) for e in validation_errors(sf.raw, exc, ("connections", name, "config"))))
    raise AssertionError("unreachable")


@connections.command("check")
@click.argument("name")
def connections_check(name: str) -> None:
    """Prove connection NAME can reach what it needs (secrets from this environment, as a run reads them)."""
    from aggregator.destinations.errors import DestinationError
    from connectors.errors import ConnectorError

    _, resource = _connection(name)
    try:
        click.echo(f"ok: {resource.check()}")
    except (ConnectorError, DestinationError, OSError) as exc:
        _fail(f"connection {name!r} failed its check: {exc}")


@connections.command("discover")
@click.argument("name")
def connections_discover(name: str) -> None:
    """List the streams/tables behind connection NAME with their columns and types.

    With sources reading NAME, each source's stream is discovered with the source's declared `columns:`
    types; without, whatever the connector can list on its own (tables, files)."""
    from connectors.errors import ConnectorError

    specs, resource = _connection(name, for_discovery=True)
    sources = [s for p, _, _ in specs.pipelines for s in p.sources if s.connection == name]
    rows: list[tuple[str, ...]] = []
    try:
        for stream_name, columns in _discover(resource, sources).items():
            rows.extend((stream_name, column, str(ctype)) for column, ctype in columns.items())
    except (ConnectorError, OSError) as exc:
        _fail(f"discovery on {name!r} failed: {exc}")
    click.echo(text_table(rows, ("stream", "column", "type")) if rows else "nothing discovered")


@connections.command("types")
def connections_types() -> None:
    """List the registered connector types: what `type:` a connection may say and what its sources read."""
    from connectors.registry import CONNECTOR_TYPES

    rows = [(c.name, c.stream_type, c.incremental_by, c.summary, f"docs/connectors/{c.page}")
            for c in CONNECTOR_TYPES.values()]
    click.echo(text_table(rows, ("type", "stream type", "incremental", "reads", "docs")))


def _discover(resource: Any, sources: list[Any]) -> dict[str, dict[str, str]]:
    """{stream: {column: type}}: of each source's stream (declared types winning), else of the connection."""
    found: dict[str, dict[str, str]] = {}
    if not sources:
        for info in resource.discover():
            found[info.name] = {c: t.value for c, t in info.columns.items()}
        return found
    for source in sources:
        # Declared types, date detection and nesting applied by the connector, exactly as in a load.
        for info in resource.discover(source.stream, source.type_hints()):
            # As the table will have them: the spec's renames and exclusions applied.
            found[info.name] = {c: t.value for c, t in source.mapping.columns(info.columns).items()}
    return found


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
    from aggregator.settings import load_settings

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
    click.echo(text_table(rows, ("pipeline", "assets", "schedule", "sensor", "file")))
    if loaded.errors:
        click.echo(f"\n{len(loaded.errors)} spec problem(s); pipelines not loaded: "
                   f"{', '.join(loaded.dropped) or 'none'}; `aggregator validate` lists them", err=True)


@pipelines.command("show")
@click.argument("name")
def pipelines_show(name: str) -> None:
    """The assets, checks, schedule and sensor compiled from pipeline NAME."""
    from aggregator.pipelines.isolate import load_isolated
    from aggregator.settings import load_settings

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
    click.echo(text_table(rows, ("asset", "kind", "table", "upstream", "checks")))


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
