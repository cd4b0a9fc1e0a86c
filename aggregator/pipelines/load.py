"""Read spec files: YAML with line numbers, pydantic validation, errors that name file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from aggregator.pipelines.spec import UNION_TAGS, Connection, PipelineSpec, SpecFile

Loc = tuple[str | int, ...]


class SpecError(ValueError):
    """One problem in one spec file, located to a line and a field."""

    def __init__(self, file: Path, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class SpecErrors(ValueError):
    """Every problem found in a spec directory, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{len(errors)} problem(s) in pipeline specs:\n{lines}")


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _positions(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    """Record the 1-based line of every mapping key and sequence item below `node`."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            out[child] = key_node.start_mark.line + 1
            _positions(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _positions(item, (*path, index), out)


@dataclass(frozen=True)
class SourceFile:
    """A parsed spec file with the line of every field, for error messages."""

    path: Path
    spec: SpecFile
    lines: dict[Loc, int] = field(repr=False)

    def error(self, loc: Loc, message: str) -> SpecError:
        return SpecError(self.path, line_of(self.lines, loc), dotted(loc), message)


def dotted(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    """Line of the deepest known prefix of `loc`; parts pydantic adds (union tags) are skipped."""
    path: Loc = ()
    for part in loc:
        if (*path, part) in lines:
            path = (*path, part)
    return lines.get(path)


def _field_path(lines: dict[Loc, int], loc: Loc) -> Loc:
    """`loc` as the user wrote it: pydantic inserts the tag of a discriminated union, which is dropped."""
    path: Loc = ()
    for part in loc:
        if (*path, part) in lines or part not in UNION_TAGS:
            path = (*path, part)
    return path


def _explain(error: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see docs/pipelines.md for the allowed keys)"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return f"{msg}"
    return msg.removeprefix("Value error, ")


def parse_file(path: Path) -> SourceFile:
    """Parse and validate one spec file; raises SpecErrors naming every problem in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecErrors([SpecError(path, None, "", f"cannot read file: {exc.strerror}")]) from exc
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise SpecErrors([SpecError(path, line, "", f"invalid YAML: {exc.problem or exc}")]) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _positions(node, (), lines)
    if not isinstance(data, dict):
        raise SpecErrors([SpecError(path, 1, "", "a spec file must be a mapping with `connections:` and/or `pipelines:`")])
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            loc = _field_path(lines, tuple(err["loc"]))
            errors.append(SpecError(path, line_of(lines, loc), dotted(loc), _explain(err)))
        raise SpecErrors(errors) from exc
    return SourceFile(path=path, spec=resolve_paths(spec, path.parent), lines=lines)


def resolve_paths(spec: SpecFile, base: Path) -> SpecFile:
    """Make relative `base_dir`s absolute against the spec file's directory."""
    connections: dict[str, Connection] = {}
    for name, conn in spec.connections.items():
        if conn.type == "files" and not Path(conn.base_dir).expanduser().is_absolute():
            conn = conn.model_copy(update={"base_dir": str((base / conn.base_dir).resolve())})
        connections[name] = conn
    return spec.model_copy(update={"connections": connections})


@dataclass(frozen=True)
class Specs:
    """Every connection and pipeline in a spec directory, with the file each came from."""

    files: list[SourceFile]
    connections: dict[str, tuple[Connection, SourceFile]]
    pipelines: list[tuple[PipelineSpec, SourceFile, int]]  # (pipeline, file, index in file)


def load_specs(root: Path) -> Specs:
    """Load every `*.yaml`/`*.yml` file under `root`; raise SpecErrors listing all problems."""
    if not root.is_dir():
        raise SpecErrors([SpecError(root, None, "", "pipeline spec directory does not exist")])
    errors: list[SpecError] = []
    files: list[SourceFile] = []
    for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            files.append(parse_file(path))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    connections: dict[str, tuple[Connection, SourceFile]] = {}
    pipelines: list[tuple[PipelineSpec, SourceFile, int]] = []
    seen_pipelines: dict[str, SourceFile] = {}
    for sf in files:
        for name, conn in sf.spec.connections.items():
            if name in connections:
                errors.append(sf.error(("connections", name), f"connection {name!r} is also declared in {connections[name][1].path}"))
            connections[name] = (conn, sf)
        for index, pipeline in enumerate(sf.spec.pipelines):
            if pipeline.name in seen_pipelines:
                errors.append(
                    sf.error(("pipelines", index, "name"), f"pipeline {pipeline.name!r} is also declared in {seen_pipelines[pipeline.name].path}")
                )
            seen_pipelines[pipeline.name] = sf
            pipelines.append((pipeline, sf, index))
    if errors:
        raise SpecErrors(errors)
    return Specs(files=files, connections=connections, pipelines=pipelines)
