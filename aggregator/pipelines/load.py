"""Read spec files: YAML with line numbers, templates expanded, pydantic validation, located errors."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from aggregator.pipelines.bounded_yaml import YamlBudgetError
from aggregator.pipelines.connections import Connection
from aggregator.pipelines.sensor_dirs import default_uploads_root, resolve_sensor_directory
from aggregator.pipelines.spec import Name, PipelineSpec, SpecFile, Template, TemplateUse
from aggregator.pipelines.templates import TemplateError, instantiate
from aggregator.pipelines.yaml_lines import Loc, dotted, line_of, load_with_lines
from connectors.registry import connector_type


class SpecError(ValueError):
    """One problem in one spec file, located to a line and a field."""

    def __init__(self, file: Path, line: int | None, field: str, message: str, pipeline: str | None = None) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        # The pipeline the problem belongs to, when known: loading drops only that pipeline.
        self.pipeline = pipeline
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class SpecErrors(ValueError):
    """Every problem found in a spec directory, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{len(errors)} problem(s) in pipeline specs:\n{lines}")


@dataclass(frozen=True)
class RawFile:
    path: Path
    data: dict[str, Any]
    lines: dict[Loc, int] = field(repr=False)

    def error(self, loc: Loc, message: str) -> SpecError:
        return SpecError(self.path, line_of(self.lines, loc), dotted(loc), message)


@dataclass(frozen=True)
class Instantiation:
    """Where a pipeline made from a template came from, so its errors point at the template."""

    template: str
    template_file: RawFile
    use_line: int | None


@dataclass(frozen=True)
class SourceFile:
    """A validated spec file, with enough position data to locate any later error."""

    raw: RawFile
    spec: SpecFile
    instantiations: dict[int, Instantiation] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.raw.path

    def error(self, loc: Loc, message: str) -> SpecError:
        if len(loc) >= 2 and loc[0] == "pipelines" and loc[1] in self.instantiations:
            inst = self.instantiations[int(loc[1])]
            t_loc: Loc = ("templates", inst.template, "pipeline", *loc[2:])
            err = inst.template_file.error(t_loc, message)
            where = f"{self.path}:{inst.use_line}" if inst.use_line else str(self.path)
            return SpecError(err.file, err.line, err.field, f"{message} (in the instance at {where})")
        return self.raw.error(loc, message)


def _explain(error: Any, loc: Loc) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        from aggregator.pipelines.suggest import unknown_key_hint

        return f"unknown key ({unknown_key_hint(loc)})"
    if kind == "missing":
        return "required field is missing"
    if kind == "invalid_step" and isinstance(error.get("input"), dict):
        import difflib

        from aggregator.pipelines.steps import STEP_NAMES

        close = [m for k in error["input"] if isinstance(k, str)
                 for m in difflib.get_close_matches(k, STEP_NAMES, n=1, cutoff=0.6)]
        return str(msg) + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "union_tag_not_found":
        # pydantic says "Unable to extract tag using discriminator 'type'": name the key and a likely typo.
        import difflib

        tag = str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")
        given = [k for k in error.get("input") or {} if isinstance(k, str)] if isinstance(error.get("input"), dict) else []
        close = difflib.get_close_matches(tag, given, n=1, cutoff=0.6)
        return f"missing key {tag!r}, which says what kind this is" + (
            f" (is {close[0]!r} a misspelling of it?)" if close else "")
    return str(msg).removeprefix("Value error, ")


def _user_loc(lines: dict[Loc, int], loc: Loc, prefix: Loc = ()) -> Loc:
    """`loc` as the user wrote it: pydantic adds the tags of discriminated unions, which are dropped."""
    path: Loc = prefix
    for part in loc:
        if (*path, part) in lines or not _is_tag(part):
            path = (*path, part)
    return path


def _is_tag(part: str | int) -> bool:
    from aggregator.pipelines.spec_tags import UNION_TAGS

    return part in UNION_TAGS


def validation_errors(raw: RawFile, exc: ValidationError, prefix: Loc = ()) -> list[SpecError]:
    out = []
    for err in exc.errors():
        loc = _user_loc(raw.lines, tuple(err["loc"]), prefix)
        out.append(raw.error(loc, _explain(err, loc)))
    return out


def read_raw(path: Path, text: str | None = None) -> RawFile:
    """Parse one spec file (from `text` when given: a pinned snapshot of it)."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecErrors([SpecError(path, None, "", f"cannot read file: {exc.strerror}")]) from exc
    try:
        data, lines = load_with_lines(text)
    except YamlBudgetError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SpecErrors([SpecError(path, line, "", f"document refused: {exc.message}")]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem}"
        if exc.context and exc.context_mark:
            message += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise SpecErrors([SpecError(path, mark.line + 1 if mark else None, "", message)]) from exc
    except yaml.YAMLError as exc:
        # Not every YAML error is "marked": the reader refuses control characters (NUL, ...) with a position
        # only. Uncaught, it crashed `aggregator validate` and the API instead of naming file and line.
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        raise SpecErrors([SpecError(path, line, "", f"invalid YAML: {str(exc).splitlines()[0]}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecErrors(
            [SpecError(path, 1, "", "a spec file is a mapping with `connections:`, `templates:` and/or `pipelines:`")]
        )
    return RawFile(path=path, data=data, lines=lines)


_TEMPLATES = TypeAdapter(dict[Name, Template])
_TEMPLATE_USE = TypeAdapter(TemplateUse)


def collect_templates(raws: list[RawFile]) -> tuple[dict[str, tuple[Template, RawFile]], list[SpecError]]:
    templates: dict[str, tuple[Template, RawFile]] = {}
    errors: list[SpecError] = []
    for raw in raws:
        try:
            found = _TEMPLATES.validate_python(raw.data.get("templates") or {})
        except ValidationError as exc:
            errors.extend(validation_errors(raw, exc, ("templates",)))
            continue
        for name, template in found.items():
            if name in templates:
                errors.append(raw.error(("templates", name), f"template {name!r} is also declared in {templates[name][1].path}"))
            templates[name] = (template, raw)
    return templates, errors


def expand_instances(
    raw: RawFile, templates: dict[str, tuple[Template, RawFile]]
) -> tuple[dict[str, Any], dict[int, Instantiation], list[SpecError]]:
    """The file's data with every `{use: t, with: ...}` under `pipelines:` replaced by the pipeline it makes
    (an instance that cannot be made becomes `{}`), where each instance came from, and why any could not."""
    data = dict(raw.data)
    instantiations: dict[int, Instantiation] = {}
    errors: list[SpecError] = []
    pipelines = data.get("pipelines")
    if isinstance(pipelines, list):
        expanded: list[Any] = []
        for index, item in enumerate(pipelines):
            if isinstance(item, dict) and "use" in item:
                try:
                    use = _TEMPLATE_USE.validate_python(item)
                except ValidationError as exc:
                    errors.extend(validation_errors(raw, exc, ("pipelines", index)))
                    expanded.append({})
                    continue
                if use.use not in templates:
                    errors.append(raw.error(("pipelines", index, "use"),
                                            f"unknown template {use.use!r}; declared: {', '.join(sorted(templates)) or 'none'}"))
                    expanded.append({})
                    continue
                template, t_raw = templates[use.use]
                try:
                    expanded.append(instantiate(use.use, template, use.with_))
                except TemplateError as exc:
                    errors.append(raw.error(("pipelines", index, "with"), str(exc)))
                    expanded.append({})
                    continue
                instantiations[index] = Instantiation(use.use, t_raw, line_of(raw.lines, ("pipelines", index)))
            else:
                expanded.append(item)
        data["pipelines"] = expanded
    return data, instantiations, errors


def validate_file(raw: RawFile, templates: dict[str, tuple[Template, RawFile]],
                  uploads_root: Path | None = None) -> SourceFile:
    """Expand template instances and validate the file; raises SpecErrors.

    Sensor directories are resolved under `uploads_root` (default: this process's settings)."""
    data, instantiations, errors = expand_instances(raw, templates)
    if errors:
        raise SpecErrors(errors)
    try:
        spec = SpecFile.model_validate(data)
    except ValidationError as exc:
        probe = SourceFile(raw=raw, spec=SpecFile(), instantiations=instantiations)
        located = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if len(loc) >= 2 and loc[0] == "pipelines" and loc[1] in instantiations:
                t_raw = instantiations[int(loc[1])].template_file
                t_loc = _user_loc(t_raw.lines, loc[2:], ("templates", instantiations[int(loc[1])].template, "pipeline"))
                user_loc: Loc = ("pipelines", loc[1], *t_loc[3:])
                located.append(probe.error(user_loc, _explain(err, user_loc)))
            else:
                user_loc = _user_loc(raw.lines, loc)
                located.append(raw.error(user_loc, _explain(err, user_loc)))
        raise SpecErrors(located) from exc
    checked = SourceFile(raw=raw, spec=spec, instantiations=instantiations)
    root = uploads_root or default_uploads_root()
    sensors: dict[int, str] = {}
    for index, pipeline in enumerate(spec.pipelines):
        if pipeline.sensor is None:
            continue
        try:
            sensors[index] = str(resolve_sensor_directory(pipeline.sensor.directory, root))
        except ValueError as exc:
            errors.append(checked.error(("pipelines", index, "sensor", "directory"), str(exc)))
    if errors:
        raise SpecErrors(errors)
    return SourceFile(raw=raw, spec=resolve_paths(spec, raw.path.parent, sensors), instantiations=instantiations)


def resolve_paths(spec: SpecFile, base: Path, sensors: dict[int, str] | None = None) -> SpecFile:
    """Relative paths in a spec (files `base_dir`, SQLite URLs) are relative to the spec file; sensor
    directories are the ones `sensors` gives (index of the pipeline -> directory under the uploads root)."""

    def absolute(value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    connections: dict[str, Connection] = {}
    for name, conn in spec.connections.items():
        config = connector_type(conn.type).resolve_paths(conn.config, absolute)
        connections[name] = conn if config == conn.config else conn.model_copy(update={"config": config})
    pipelines: list[PipelineSpec] = []
    for index, pipeline in enumerate(spec.pipelines):
        if pipeline.sensor and sensors is not None and index in sensors:
            sensor = pipeline.sensor.model_copy(update={"directory": sensors[index]})
            pipeline = pipeline.model_copy(update={"sensor": sensor})
        pipelines.append(pipeline)
    return spec.model_copy(update={"connections": connections, "pipelines": pipelines})


@dataclass(frozen=True)
class Specs:
    """Every connection and pipeline in a spec directory, with the file each came from."""

    files: list[SourceFile]
    connections: dict[str, tuple[Connection, SourceFile]]
    pipelines: list[tuple[PipelineSpec, SourceFile, int]]  # (pipeline, file, index in the file)

    def without(self, pipelines: Collection[str], connections: Collection[str] = ()) -> Specs:
        """These specs minus some pipelines and connections (those that failed to compile)."""
        return Specs(
            files=self.files,
            connections={n: c for n, c in self.connections.items() if n not in connections},
            pipelines=[p for p in self.pipelines if p[0].name not in pipelines],
        )

    def pipeline(self, name: str) -> PipelineSpec:
        for pipeline, _, _ in self.pipelines:
            if pipeline.name == name:
                return pipeline
        raise KeyError(name)


def spec_paths(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted({*root.rglob("*.yaml"), *root.rglob("*.yml")})


def load_specs(root: Path, texts: dict[Path, str] | None = None, uploads_root: Path | None = None) -> Specs:
    """Load every `*.yaml`/`*.yml` file under `root` (or the one file `root`); raise SpecErrors listing all problems."""
    specs, errors = load_specs_partial(root, texts, uploads_root)
    if errors:
        raise SpecErrors(errors)
    return specs


def load_specs_partial(root: Path, texts: dict[Path, str] | None = None,
                       uploads_root: Path | None = None) -> tuple[Specs, list[SpecError]]:
    """Every spec file that validates, and every problem of those that do not.

    A file with any problem is left out whole (its connections, templates and pipelines), the way Airflow
    drops a DAG file with an import error: the other files keep loading. `texts` (path -> content) replaces
    reading the files, so a run can use the exact specs it was launched with.
    """
    if texts is None and not root.exists():
        return Specs(files=[], connections={}, pipelines=[]), [
            SpecError(root, None, "", "pipeline spec path does not exist")
        ]
    errors: list[SpecError] = []
    raws: list[RawFile] = []
    paths = sorted(texts) if texts is not None else spec_paths(root)
    for path in paths:
        try:
            raws.append(read_raw(path, None if texts is None else texts[path]))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    templates, template_errors = collect_templates(raws)
    errors.extend(template_errors)
    broken = {e.file for e in template_errors}
    files: list[SourceFile] = []
    for raw in raws:
        try:
            checked = validate_file(raw, templates, uploads_root)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        if raw.path not in broken:
            files.append(checked)
    connections: dict[str, tuple[Connection, SourceFile]] = {}
    pipelines: list[tuple[PipelineSpec, SourceFile, int]] = []
    seen: dict[str, SourceFile] = {}
    accepted: list[SourceFile] = []
    for sf in files:
        # A name declared twice: the later file is the one left out, so what already loads keeps loading.
        clashes = [
            sf.error(("connections", name), f"connection {name!r} is also declared in {connections[name][1].path}")
            for name in sf.spec.connections if name in connections
        ] + [
            sf.error(("pipelines", index, "name"),
                     f"pipeline {pipeline.name!r} is also declared in {seen[pipeline.name].path}")
            for index, pipeline in enumerate(sf.spec.pipelines) if pipeline.name in seen
        ]
        if clashes:
            errors.extend(clashes)
            continue
        accepted.append(sf)
        for name, conn in sf.spec.connections.items():
            connections[name] = (conn, sf)
        for index, pipeline in enumerate(sf.spec.pipelines):
            seen[pipeline.name] = sf
            pipelines.append((pipeline, sf, index))
    return Specs(files=accepted, connections=connections, pipelines=pipelines), errors
