"""Each pipeline owns its tables: a pipeline writes only tables named `<pipeline>_<something>`.

The prefix is the naming the platform always used by default (`<pipeline>_<source>`), so existing warehouses
keep working unchanged, on SQLite and PostgreSQL alike (a schema per pipeline would have moved every existing
table). What is new is that it is enforced: a `table:` outside the pipeline's prefix, a name of a system
catalog, or a table in the namespace of another pipeline is refused, naming file, line, field and the rule.
Pipeline names may contain `_`, so prefixes nest (`sales_` holds `sales_eu_`): a table belongs to the pipeline
with the longest name whose prefix it carries, and a pipeline may not write into a nested pipeline's part.

Ownership of a table, for the API's listing, query and export, is `namespace_owner`, never the table a spec
declares: a declared name only counts when it lies in the declaring pipeline's own namespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aggregator.pipelines.graph import Graph, Node
from aggregator.pipelines.load import SpecError

# Names the databases keep for themselves: SQLite's `sqlite_*` (sqlite_master, sqlite_sequence, ...),
# PostgreSQL's `pg_*` catalogs and the SQL-standard `information_schema`.
SYSTEM_NAME = re.compile(r"^(sqlite_|pg_|information_schema$)")
RULE = "a pipeline writes only tables named `<pipeline>_<name>` (docs/pipelines.md, \"Tables\")"


def namespace_owner(table: str, pipelines: Iterable[str]) -> str | None:
    """The pipeline whose namespace holds `table`: the longest name `p` with `table` starting `p_`."""
    owners = [p for p in pipelines if table.startswith(f"{p}_")]
    return max(owners, key=len) if owners else None


def is_system_name(table: str) -> bool:
    return bool(SYSTEM_NAME.match(table.lower()))


def table_problems(graph: Graph) -> list[SpecError]:
    """Every table outside its pipeline's namespace, named for a system catalog, or written twice; each error
    belongs to the pipeline that declares the table, so loading drops only that pipeline."""
    pipelines = {p.name for p, _, _ in graph.specs.pipelines}
    errors: list[SpecError] = []
    writers: dict[str, Node] = {}
    nested = {n.table: n for n in graph.nodes.values() if has_child_tables(n)}
    for node in graph.nodes.values():
        message = _problem(node, pipelines, writers.get(node.table)) or _in_child_tables(node, nested)
        if message is None:
            # Only a rightful writer makes a later one a duplicate: an intruder must not evict the owner.
            writers.setdefault(node.table, node)
        else:
            field = "table" if node.spec.table is not None else "name"
            error = node.file.error((*node.loc, field), message)
            error.pipeline = node.pipeline.name
            errors.append(error)
    return errors


def has_child_tables(node: Node) -> bool:
    """Whether the node's loads write child tables `<table>__<path>` (connectors/nested.py)."""
    if not node.is_source:
        return False
    nested = getattr(node.source.stream, "nested", None)
    return nested is not None and nested.arrays == "child_tables" and nested.max_depth != 0


def _in_child_tables(node: Node, nested: dict[str, Node]) -> str | None:
    for parent, owner in nested.items():
        if node.table != parent and node.table.startswith(f"{parent}__"):
            return (f"table {node.table!r} is where the child tables of {owner.pipeline.name}/{owner.name} go "
                    f"(`{parent}__<array>`, docs/connectors/nested.md); give it another name")
    return None


def _problem(node: Node, pipelines: set[str], earlier: Node | None) -> str | None:
    table, pipeline = node.table, node.pipeline.name
    how = f"`table: {table}`" if node.spec.table is not None else f"the default table name {table!r}"
    if is_system_name(table):
        return (f"{how} is a system catalog name (sqlite_*, pg_*, information_schema are the database's own); "
                f"{RULE}")
    if not table.startswith(f"{pipeline}_"):
        wanted = f"{pipeline}_{node.name}"
        return (f"{how} is outside pipeline {pipeline!r}'s namespace: {RULE}; use `table: {wanted}` (or leave "
                f"`table:` out). Existing data moves with: ALTER TABLE {table} RENAME TO {wanted}")
    owner = namespace_owner(table, pipelines)
    if owner != pipeline:
        return (f"{how} is in the namespace of pipeline {owner!r} (prefix `{owner}_`: the longest pipeline "
                f"name a table starts with owns it); rename the table or one of the pipelines")
    if earlier is not None:
        return (f"{how} is also written by {earlier.pipeline.name}/{earlier.name}; each source and transform "
                "needs a table of its own")
    return None
