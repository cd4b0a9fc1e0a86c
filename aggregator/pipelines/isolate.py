"""Load what compiles, report the rest: one broken spec drops only its own pipelines."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from aggregator.pipelines.compile import resources_by_connection
from aggregator.pipelines.connections import Connection, build_resource
from aggregator.pipelines.declared import declared_by_broken
from aggregator.pipelines.graph import Graph, build_graph
from aggregator.pipelines.load import (
    SpecError,
    SpecErrors,
    Specs,
    collect_templates,
    load_specs_partial,
    read_raw,
    spec_paths,
    validation_errors,
)
from aggregator.pipelines.namespace import table_problems
from aggregator.pipelines.spec import Name
from aggregator.pipelines.transform_reads import read_problems
from aggregator.settings import Settings
from connectors.secrets import SecretReferenceError

_CONNECTIONS = TypeAdapter(dict[Name, Connection])


@dataclass(frozen=True)
class Loaded:
    """The pipelines that compile, and every problem that kept the others out."""

    graph: Graph
    resources: dict[str, Any]
    errors: list[SpecError]
    dropped: list[str]  # pipelines declared in valid files but left out because of an error

    @property
    def specs(self) -> Specs:
        return self.graph.specs


def load_isolated(root: Path, settings: Settings, texts: dict[Path, str] | None = None) -> Loaded:
    """Every pipeline that compiles; a problem removes only the file, connection or pipeline it is in.

    Files that do not validate are left out whole. Then, until nothing changes: a connection whose config
    does not build is removed with the pipelines that use it, and a pipeline with a graph problem (unknown
    connection, dangling reference, cycle, a table outside its namespace, SQL reading a table no ref names)
    is removed, which may in turn leave a pipeline that read its
    tables with a dangling reference (reported the same way).
    """
    specs, errors = load_specs_partial(root, texts)
    broken_errors, dropped = _broken_files(root, specs, errors, texts)
    errors.extend(broken_errors)
    resources, bad_connections = resources_by_connection(specs, settings)
    for conn_errors in bad_connections.values():
        errors.extend(conn_errors)
    users = {
        p.name: sorted({s.connection for s in p.sources} | {p.destination}) for p, _, _ in specs.pipelines
    }
    for pipeline, sf, index in specs.pipelines:
        bad = [c for c in users[pipeline.name] if c in bad_connections]
        if bad:
            errors.append(SpecError(sf.path, sf.error(("pipelines", index), "").line, "",
                                    f"pipeline {pipeline.name!r} is not loaded: connection(s) {', '.join(bad)} "
                                    "have errors (listed above)", pipeline=pipeline.name))
            dropped.append(pipeline.name)
    specs = specs.without(dropped, bad_connections)
    while True:
        try:
            graph = build_graph(specs)
            problems = scope_problems(graph, settings)
            if not problems:
                break
            raise SpecErrors(problems)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            owners = {e.pipeline for e in exc.errors}
            # Every graph error names its pipeline; an unowned one would loop forever, so drop everything.
            names = {p.name for p, _, _ in specs.pipelines} if None in owners else {o for o in owners if o}
            dropped.extend(sorted(names))
            specs = specs.without(names)
    return Loaded(graph=graph, resources=resources, errors=errors, dropped=dropped)


def scope_problems(graph: Graph, settings: Settings) -> list[SpecError]:
    """What a pipeline may not do even when it compiles: write outside its table namespace, or read a table
    no ref names."""
    return [*table_problems(graph), *read_problems(graph, settings)]


def _templates(paths: list[Path], texts: dict[Path, str] | None) -> dict[str, Any]:
    raws = []
    for path in paths:
        try:
            raws.append(read_raw(path, None if texts is None else texts[path]))
        except SpecErrors:
            continue
    return collect_templates(raws)[0]


def _broken_files(
    root: Path, specs: Specs, errors: list[SpecError], texts: dict[Path, str] | None
) -> tuple[list[SpecError], list[str]]:
    """Connection-config problems in files left out for other problems (so one pass reports both), and the
    names of the pipelines those files declare."""
    loaded = {sf.path for sf in specs.files}
    broken = {e.file for e in errors} - loaded
    found: list[SpecError] = []
    names: list[str] = []
    known = {str(e) for e in errors}
    paths = sorted(texts) if texts is not None else (spec_paths(root) if root.exists() else [])
    templates = _templates(paths, texts) if broken else {}
    for path in paths:
        if path not in broken:
            continue
        try:
            raw = read_raw(path, None if texts is None else texts[path])
        except SpecErrors:
            continue  # unreadable or not YAML: already reported
        # Template instances count as the pipelines they make, as everywhere else (declared.py).
        names.extend(declared_by_broken(raw, templates).pipelines)
        try:
            conns = _CONNECTIONS.validate_python(raw.data.get("connections") or {})
        except ValidationError:
            continue  # already reported by the file's own validation
        for name, conn in conns.items():
            try:
                build_resource(conn)
            except ValidationError as exc:
                found.extend(e for e in validation_errors(raw, exc, ("connections", name, "config"))
                             if str(e) not in known)
            except SecretReferenceError as exc:
                found.append(raw.error(("connections", name, *exc.path), exc.reason))
            except ValueError as exc:
                found.append(raw.error(("connections", name), str(exc)))
    return found, names
