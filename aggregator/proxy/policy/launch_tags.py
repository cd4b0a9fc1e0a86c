"""Stamp Dagster's `user` tag on every launch so the UI shows who launched a run.

The proxy rewrites the document it authorized: each launch argument becomes a fresh variable holding the
coerced value plus `user=<principal>` (replacing any `user` tag the client sent, which would be a forgery).
Variables no longer referenced are dropped, since Dagster rejects unused variables.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    NameNode,
    OperationDefinitionNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse_type,
    print_ast,
    visit,
)

from aggregator.proxy.graphql_ops import (
    GraphQLInspector,
    ParsedDocument,
    RootField,
    fragments_of,
    iter_root_fields,
)

USER_TAG = "user"
# The K8sRunLauncher turns tags under this prefix into pod and job spec (`dagster-k8s/config`: volumes,
# service accounts, images): a run tag must never choose them.
K8S_TAG_PREFIX = "dagster-k8s/"
ARG_PREFIX = "aggregatorProxyArg"  # the variables stamp_user writes each launch argument into

# mutation -> (argument, path to the tag list inside it, tag list field name)
LAUNCH_ARGS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "launchRun": [("executionParams", ("executionMetadata", "tags"))],
    "launchPipelineExecution": [("executionParams", ("executionMetadata", "tags"))],
    "launchMultipleRuns": [("executionParamsList", ("executionMetadata", "tags"))],
    "launchRunReexecution": [
        ("executionParams", ("executionMetadata", "tags")),
        ("reexecutionParams", ("extraTags",)),
    ],
    "launchPipelineReexecution": [
        ("executionParams", ("executionMetadata", "tags")),
        ("reexecutionParams", ("extraTags",)),
    ],
    "launchPartitionBackfill": [("backfillParams", ("tags",))],
    "reexecutePartitionBackfill": [("reexecutionParams", ("extraTags",))],
}


def kubernetes_tags(tags: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys among `tags` ({"key", "value"} pairs) that would reach Kubernetes through the run launcher."""
    return sorted({str(t.get("key")) for t in tags if str(t.get("key") or "").startswith(K8S_TAG_PREFIX)})


def kubernetes_tags_of_launch(variables: Mapping[str, Any]) -> list[str]:
    """`kubernetes_tags` of every tag in the launch arguments `stamp_user` rewrote (its `ARG_PREFIX` variables):
    the tag lists of launches, re-executions and backfills, wherever in the argument they sit."""
    found: list[Mapping[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("key"), str) and "value" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name, value in variables.items():
        if name.startswith(ARG_PREFIX):
            walk(value)
    return kubernetes_tags(found)


def to_json_input(value: Any, type_: GraphQLInputType) -> Any:
    """Turn a coerced input value back into the JSON a client would send for it."""
    if isinstance(type_, GraphQLNonNull):
        return to_json_input(value, type_.of_type)
    if value is None:
        return None
    if isinstance(type_, GraphQLList):
        items = value if isinstance(value, list) else [value]
        return [to_json_input(v, type_.of_type) for v in items]
    if isinstance(type_, GraphQLInputObjectType):
        return {k: to_json_input(v, type_.fields[k].type) for k, v in value.items() if k in type_.fields}
    if isinstance(type_, GraphQLEnumType):
        for name, enum_value in type_.values.items():
            if enum_value.value == value or name == value:
                return name
        raise ValueError(f"value {value!r} is not in enum {type_.name}")
    return value


def _with_user(obj: dict[str, Any], path: tuple[str, ...], user: str) -> dict[str, Any]:
    target = obj
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    tags = [t for t in (target.get(path[-1]) or []) if t.get("key") != USER_TAG]
    target[path[-1]] = [*tags, {"key": USER_TAG, "value": user}]
    return obj


def _used_variables(node: Any) -> set[str]:
    used: set[str] = set()

    class Collect(Visitor):
        def enter_variable(self, var: VariableNode, *_: Any) -> None:
            used.add(var.name.value)

    for definition in node if isinstance(node, list) else [node]:
        visit(definition, Collect())
    return used


def stamp_user(
    inspector: GraphQLInspector, parsed: ParsedDocument, variables: Mapping[str, Any] | None, user: str
) -> tuple[str, dict[str, Any]] | None:
    """Rewritten (query, variables) if the document launches anything, else None (forward unchanged)."""
    if not any(f.name in LAUNCH_ARGS for f in parsed.mutations):
        return None
    document: DocumentNode = copy.deepcopy(parsed.document)
    fragments = fragments_of(document)
    out_vars = dict(variables or {})
    schema = inspector.schema
    if schema.mutation_type is None:  # unreachable: a document with mutations validated against it
        raise RuntimeError("Dagster's schema has no mutation type")
    counter = 0
    for op in document.definitions:
        if not isinstance(op, OperationDefinitionNode) or op.operation.value != "mutation":
            continue
        new_defs: list[VariableDefinitionNode] = []
        for node in iter_root_fields(op.selection_set, fragments, frozenset()):
            if node.name.value not in LAUNCH_ARGS:
                continue
            args = inspector.arguments(RootField("mutation", node.name.value, node, op), variables)
            field_def = schema.mutation_type.fields[node.name.value]
            for arg_name, path in LAUNCH_ARGS[node.name.value]:
                if args.get(arg_name) is None:
                    continue
                arg_type = field_def.args[arg_name].type
                value = to_json_input(args[arg_name], arg_type)
                value = [_with_user(v, path, user) for v in value] if isinstance(value, list) else _with_user(
                    value, path, user
                )
                var_name = f"{ARG_PREFIX}{counter}"
                counter += 1
                out_vars[var_name] = value
                new_defs.append(
                    VariableDefinitionNode(
                        variable=VariableNode(name=NameNode(value=var_name)), type=parse_type(str(arg_type))
                    )
                )
                _set_argument(node, arg_name, var_name)
        used = _used_variables([op.selection_set, *fragments.values()])
        kept = [d for d in (op.variable_definitions or ()) if d.variable.name.value in used]
        op.variable_definitions = tuple(kept + new_defs)
    all_used = _used_variables(
        [d.selection_set for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        + list(fragments.values())
    )
    return print_ast(document), {k: v for k, v in out_vars.items() if k in all_used}


def _set_argument(node: FieldNode, arg_name: str, var_name: str) -> None:
    new_arg = ArgumentNode(name=NameNode(value=arg_name), value=VariableNode(name=NameNode(value=var_name)))
    node.arguments = tuple(a for a in (node.arguments or ()) if a.name.value != arg_name) + (new_arg,)
