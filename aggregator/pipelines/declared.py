"""What spec files declare, as the loader sees it: the one authority for every scope decision.

Reading `name:` keys is not enough: `{use: t, with: {n: other}}` in `sales.yaml` makes pipeline `other`, and
a template edited in one file changes the pipelines made from it in others. So "which pipelines and
connections does this write touch" is answered by loading the specs directory twice, as it is and as it
would be after the write (the same loader as the code location), and comparing what each pipeline and
connection is. A file the loader leaves out (a problem in it) still declares what its template instances
would make, expanded the same way, so a broken file cannot hide a pipeline from the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.pipelines.load import (
    RawFile,
    SpecErrors,
    collect_templates,
    expand_instances,
    load_specs_partial,
    read_raw,
    spec_paths,
)
from aggregator.pipelines.spec import PipelineSpec


@dataclass(frozen=True)
class FileDeclares:
    """The pipelines and connections one spec file declares (template instances made)."""

    pipelines: tuple[str, ...]
    connections: tuple[str, ...]


@dataclass(frozen=True)
class World:
    """The specs directory as loaded: each pipeline and connection as data, and what each file declares."""

    pipelines: dict[str, PipelineSpec]
    pipeline_data: dict[str, Any]
    connection_data: dict[str, Any]
    files: dict[Path, FileDeclares]


@dataclass(frozen=True)
class Impact:
    """What a write to one spec file changes, by the loader's account."""

    pipelines: frozenset[str]  # added, changed or removed, plus every pipeline the file declares before and after
    connections: frozenset[str]  # added, changed or removed connections
    reads: dict[str, frozenset[str]]  # pipeline -> other pipelines its changed transforms read (`other.name` refs)


def current_texts(root: Path) -> dict[Path, str]:
    """Every spec file's text now (an unreadable file counts as empty: the loader reports it)."""
    texts: dict[Path, str] = {}
    if not root.exists():
        return texts
    for path in spec_paths(root):
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except OSError:
            texts[path] = ""
    return texts


def load_world(root: Path, texts: dict[Path, str]) -> World:
    specs, _ = load_specs_partial(root, texts)
    files: dict[Path, FileDeclares] = {
        sf.path: FileDeclares(tuple(p.name for p in sf.spec.pipelines), tuple(sf.spec.connections))
        for sf in specs.files
    }
    if any(path not in files for path in texts):
        # Only then is every file parsed a second time: templates may come from any of them.
        raws = _raws(texts)
        templates, _ = collect_templates(list(raws.values()))
        for path, raw in raws.items():
            if path not in files:
                files[path] = declared_by_broken(raw, templates)
    for path in texts:
        files.setdefault(path, FileDeclares((), ()))
    return World(
        pipelines={p.name: p for p, _, _ in specs.pipelines},
        pipeline_data={p.name: p.model_dump(mode="json", by_alias=True) for p, _, _ in specs.pipelines},
        connection_data={name: conn.model_dump(mode="json") for name, (conn, _) in specs.connections.items()},
        files=files,
    )


def declarations(root: Path, texts: dict[Path, str] | None = None) -> dict[Path, FileDeclares]:
    """What each spec file under `root` declares now (or in `texts`, path -> content), in file order."""
    return load_world(root, current_texts(root) if texts is None else texts).files


def impact(root: Path, path: Path, content: str | None, texts: dict[Path, str] | None = None) -> Impact:
    """What writing `content` to `path` (None: deleting it) changes in the specs under `root` (as they are on
    disk, or as `texts` holds them)."""
    before_texts = current_texts(root) if texts is None else dict(texts)
    # The same file under the name the directory walk gives it (the caller may have resolved symlinks).
    path = next((p for p in before_texts if p.resolve() == path.resolve()), path)
    after_texts = dict(before_texts)
    if content is None:
        after_texts.pop(path, None)
    else:
        after_texts[path] = content
    before, after = load_world(root, before_texts), load_world(root, after_texts)
    empty = FileDeclares((), ())
    pipelines = {n for n in {*before.pipeline_data, *after.pipeline_data}
                 if before.pipeline_data.get(n) != after.pipeline_data.get(n)}
    pipelines |= {*before.files.get(path, empty).pipelines, *after.files.get(path, empty).pipelines}
    connections = {n for n in {*before.connection_data, *after.connection_data}
                   if before.connection_data.get(n) != after.connection_data.get(n)}
    # A file the loader leaves out before or after still names its connections: compare them as written.
    raw_before, raw_after = _raw_connections(before_texts.get(path)), _raw_connections(after_texts.get(path))
    connections |= {n for n in {*raw_before, *raw_after} if raw_before.get(n) != raw_after.get(n)}
    reads: dict[str, frozenset[str]] = {}
    for name in pipelines:
        if name in after.pipelines:
            others = _changed_cross_refs(before.pipelines.get(name), after.pipelines[name])
            if others:
                reads[name] = frozenset(others)
    return Impact(frozenset(pipelines), frozenset(connections), reads)


def _changed_cross_refs(before: PipelineSpec | None, after: PipelineSpec) -> set[str]:
    """Other pipelines read by the transforms this write adds or changes: an unchanged transform's refs were
    authorized when it was written, a changed one may read more of them (SELECT * instead of an aggregate)."""
    old = {t.name: t.model_dump(mode="json", by_alias=True) for t in (before.transforms if before else [])}
    others: set[str] = set()
    for transform in after.transforms:
        if old.get(transform.name) == transform.model_dump(mode="json", by_alias=True):
            continue
        for ref in transform.refs:
            owner, _, _ = ref.rpartition(".")
            if owner and owner != after.name:
                others.add(owner)
    return others


def _raws(texts: dict[Path, str]) -> dict[Path, RawFile]:
    raws: dict[Path, RawFile] = {}
    for path in sorted(texts):
        try:
            raws[path] = read_raw(path, texts[path])
        except SpecErrors:
            continue  # not YAML: it declares nothing anyone can load
    return raws


def declared_by_broken(raw: RawFile, templates: dict[str, Any]) -> FileDeclares:
    """What a file the loader leaves out would declare: its pipelines with template instances made (an
    instance that cannot be made declares nothing: it is not a pipeline anywhere), and its connections."""
    data, _, _ = expand_instances(raw, templates)
    pipelines = data.get("pipelines")
    names = tuple(p["name"] for p in pipelines if isinstance(p, dict) and isinstance(p.get("name"), str)) \
        if isinstance(pipelines, list) else ()
    return FileDeclares(names, tuple(_raw_connections_of(raw.data)))


def _raw_connections(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        raw = read_raw(Path("<candidate>"), text)
    except SpecErrors:
        return {}
    return _raw_connections_of(raw.data)


def _raw_connections_of(data: dict[str, Any]) -> dict[str, Any]:
    connections = data.get("connections")
    return {str(k): v for k, v in connections.items()} if isinstance(connections, dict) else {}
