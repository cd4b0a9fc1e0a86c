"""`aggregator validate`: every check that can run without running a pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from aggregator.pipelines.alert_setup import alert_setup_partial
from aggregator.pipelines.graph import Node
from aggregator.pipelines.isolate import load_isolated
from aggregator.pipelines.load import SpecError, Specs
from aggregator.pipelines.refs import render
from aggregator.pipelines.spec import TransformSpec
from aggregator.pipelines.steps import step_expressions
from aggregator.pipelines.warehouse_check import check_warehouse
from aggregator.settings import Settings
from connectors.secrets import SecretPolicy, env_refs


@dataclass(frozen=True)
class Report:
    specs: Specs | None
    errors: list[SpecError]
    # What `--warehouse` could not check (tables not materialized yet): said, not failed.
    unchecked: list[SpecError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _dialect(url: str | None) -> str | None:
    if not url:
        return None
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite", "mysql": "mysql"}.get(scheme)


def check_sql(node: Node, dialect: str | None) -> list[SpecError]:
    """Parse the transform's SQL (refs replaced by their tables) and its step expressions."""
    spec = node.transform
    errors: list[SpecError] = []
    if spec.sql is not None:
        sql = render(spec.sql, lambda ref: node.upstream[ref].table if ref in node.upstream else "missing")
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            detail = first.get("description") or str(exc).splitlines()[0]
            errors.append(node.file.error((*node.loc, "sql"), f"SQL does not parse: {detail} (line {first.get('line', '?')} of the statement)"))
            return errors
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            errors.append(node.file.error((*node.loc, "sql"), "must be exactly one SELECT statement (WITH … SELECT is fine)"))
        return errors
    for loc, text in step_expressions(spec.steps):
        try:
            parsed = sqlglot.parse_one(text, read=dialect)
            if not isinstance(parsed, exp.Expression) or isinstance(parsed, exp.Query | exp.Command):
                raise ParseError("not an expression")
        except ParseError as exc:
            errors.append(node.file.error((*node.loc, *loc), f"not a SQL expression: {str(exc).splitlines()[0]}"))
    return errors


def validate(
    path: Path, settings: Settings, environ: Mapping[str, str] | None = None, *, warehouse: bool = False,
    texts: dict[Path, str] | None = None,
) -> Report:
    """All problems in the specs at `path` in one pass, each naming file, line and field. With `warehouse`,
    every transform is also prepared against the destination's current schema (nothing runs).

    With `environ` (the CLI passes the pipelines' environment), an allowed `{env: NAME}` that is not set there
    is reported too. Without it nothing is said about any environment: the proxy validates specs for users
    who must not learn which variables exist (names the policy refuses are spec errors either way). `texts`
    (path under `path` -> content) are validated instead of the files (the API validates the spec store)."""
    loaded = load_isolated(path, settings, texts)
    specs = loaded.specs
    errors: list[SpecError] = list(loaded.errors)
    errors.extend(alert_setup_partial(specs)[1])
    if environ is not None:
        policy = SecretPolicy.from_env(environ)
        for name, (conn, sf) in specs.connections.items():
            for loc, var in env_refs(conn.config):
                if policy.refusal(var) is None and var not in environ:  # refused names are load errors already
                    # Name the variable, never a value.
                    errors.append(sf.error(("connections", name, "config", *loc),
                                           f"environment variable {var} is not set"))
    sql_errors: list[SpecError] = []
    for node in loaded.graph.nodes.values():
        if isinstance(node.spec, TransformSpec):
            dest = node.pipeline.destination
            url = settings.warehouse_url if dest == "warehouse" else specs.connections[dest][0].config.get("url")
            sql_errors.extend(check_sql(node, _dialect(url if isinstance(url, str) else None)))
    errors.extend(sql_errors)
    unchecked: list[SpecError] = []
    if warehouse and not sql_errors:
        found, unchecked = check_warehouse(loaded.graph, loaded.resources)
        errors.extend(found)
    return Report(specs=specs, errors=errors, unchecked=unchecked)
