"""`aggregator specs apply DIR` / `specs export DIR`: the GitOps path into and out of the spec store."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the CLI imports no SQLAlchemy before a command needs it
    from sqlalchemy.engine import Engine


def _grant_read(engine: Engine, roles: tuple[str, ...], suffix: str) -> None:
    """SELECT on the spec store for each role (`apply --grant-read` and `grant-read`), said per role."""
    from aggregator.specstore.grants import GrantError, grant_read

    for role in roles:
        try:
            grant_read(engine, role)
        except GrantError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"role {role} may read the spec store{suffix}")


def _user() -> str:
    try:
        return os.environ.get("AGGREGATOR_SPECS_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def register_specs_commands(main: click.Group) -> None:
    @main.group()
    def specs() -> None:
        """The spec store (the platform database): apply a directory of specs, export it."""

    @specs.command("apply")
    @click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Validate and print the diff; store nothing.")
    @click.option("--reload-url", default=None, help="Dagster GraphQL URL (the webserver's /graphql) to reload the "
                  "code location at after a change.")
    @click.option("--grant-read", "readers", multiple=True, metavar="ROLE",
                  help="PostgreSQL role to give SELECT on the spec store's tables (and nothing else), so code "
                  "servers, run pods and the worker read the store without write access; repeatable, idempotent.")
    @click.option("--env-check/--no-env-check", default=True, show_default=True,
                  help="Report `{env: NAME}` variables that are not set here. Off in a deploy job, whose "
                  "environment is not the one the pipelines run in.")
    def apply(directory: Path, dry_run: bool, reload_url: str | None, readers: tuple[str, ...],
              env_check: bool) -> None:
        """Make the store hold exactly DIRECTORY's spec files: validated as `aggregator validate` does, the
        unified diff printed, one new revision (none when nothing changed), recorded with your user name."""
        from aggregator.pipelines.validate import validate
        from aggregator.settings import load_settings
        from aggregator.specstore.current import open_spec_db
        from aggregator.specstore.directory import read_directory
        from aggregator.specstore.grants import GrantError, check_reader
        from aggregator.specstore.store import unified_diff

        settings = load_settings()
        root = directory.resolve()
        report = validate(root, settings.model_copy(update={"pipelines_dir": root}), os.environ if env_check else None)
        if not report.ok:
            for error in report.errors:
                click.echo(f"error: {error}", err=True)
            raise click.ClickException(f"{len(report.errors)} problem(s) found; nothing was applied")
        db = open_spec_db(settings)
        try:
            for role in readers:  # before anything is stored: a typo must not leave half a deploy behind
                check_reader(db.engine, role)
        except GrantError as exc:
            raise click.ClickException(str(exc)) from exc
        wanted = read_directory(root)
        diff = unified_diff(db.snapshot().files, wanted)
        click.echo(diff, nl=False)
        if dry_run:
            click.echo("dry run: nothing stored" if diff else "no changes")
            return
        number, _ = db.replace_all(wanted, _user(), "apply")
        _grant_read(db.engine, readers, "")
        if number is None:
            click.echo(f"no changes (spec store revision {db.head()})")
            return
        click.echo(f"applied as spec store revision {number}")
        if reload_url:
            import asyncio

            import httpx

            from aggregator.proxy.api.reload import reload_locations

            async def _reload() -> list[str]:
                async with httpx.AsyncClient() as client:
                    return await reload_locations(client, reload_url, {})

            problems = asyncio.run(_reload())
            click.echo("code location reloaded" if not problems else f"reload failed: {'; '.join(problems)}")

    @specs.command("grant-read")
    @click.argument("roles", nargs=-1, required=True)
    def grant_read_command(roles: tuple[str, ...]) -> None:
        """Give ROLES SELECT on the spec store's tables and nothing else (PostgreSQL; idempotent), bringing the
        platform database's schema forward first: what `apply --grant-read` does, for a store whose specs are
        managed through the API."""
        from aggregator.settings import load_settings
        from aggregator.specstore.current import open_spec_db

        db = open_spec_db(load_settings())
        _grant_read(db.engine, roles, f" (revision {db.head()})")

    @specs.command("export")
    @click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
    def export(directory: Path) -> None:
        """Write the store's newest spec files into DIRECTORY (made if missing)."""
        from aggregator.settings import load_settings
        from aggregator.specstore.current import open_spec_db
        from aggregator.specstore.directory import write_file

        snap = open_spec_db(load_settings()).snapshot()
        for rel, content in snap.files.items():
            write_file(directory, rel, content)
        click.echo(f"{len(snap.files)} file(s) of spec store revision {snap.revision} written to {directory}")
