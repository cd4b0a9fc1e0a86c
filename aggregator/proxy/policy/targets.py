"""What a mutation acts on, read from the coerced arguments the proxy authorized by walking Dagster's schema.

The walk is driven by `target_fields.TARGET_FIELDS`: every argument and input field is a target, an input
object to enter, or harmless. A field that is none of these makes the request a refusal (`UnmappedField`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    get_named_type,
)

from aggregator.proxy.policy.target_fields import SCALAR_TARGET_TYPES, WALK, Kind, classify


class UnmappedField(ValueError):
    """An argument or input field the target map does not classify: refused, since it might select anything."""


@dataclass(frozen=True)
class Target:
    kind: Kind
    name: str
    # One launch: the root argument, with the list index for list arguments (`executionParamsList[2]`).
    # A job is judged together with the asset/check/op selection of the same launch.
    launch: str
    field: str  # `JobOrPipelineSelector.jobName`: which field named it (audit and the executed-job rule)


def asset_key(value: Mapping[str, Any]) -> str:
    return "/".join(str(p) for p in value.get("path") or [])


def _names(value: Any, named: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        if named in SCALAR_TARGET_TYPES:
            out.append(str(item))
        elif named == "AssetKeyInput":
            out.append(asset_key(item))
        elif named == "AssetCheckHandleInput":
            out.append(f"{asset_key(item.get('assetKey') or {})}:{item.get('name')}")
        else:  # the schema test keeps this unreachable; refusing keeps it safe if not
            raise UnmappedField(f"cannot read a target from a value of type {named}")
    return out


def _walk(mutation: str, owner: str | None, name: str, value: Any, type_: GraphQLInputType, launch: str,
          out: list[Target]) -> None:
    if value is None:
        return
    what = classify(mutation, owner, name)
    label = f"{mutation}({name})" if owner is None else f"{owner}.{name}"
    if what is None:
        raise UnmappedField(f"{label} is not in the proxy's target map, so a scoped grant cannot be checked")
    if what == "harmless":
        return
    named = get_named_type(type_)
    if what == WALK:
        if not isinstance(named, GraphQLInputObjectType):
            raise UnmappedField(f"{label} is marked to walk but is not an input object")
        for item in value if isinstance(value, list) else [value]:
            for field_name, field_value in (item or {}).items():
                field = named.fields.get(field_name)
                if field is None:
                    raise UnmappedField(f"{named.name}.{field_name} is not in Dagster's schema")
                _walk(mutation, named.name, field_name, field_value, field.type, launch, out)
        return
    if not isinstance(what, Kind):  # `classify` returns a Kind, WALK or "harmless"; anything else refuses
        raise UnmappedField(f"{label} has an unknown classification {what!r}")
    out.extend(Target(what, n, launch, label) for n in _names(value, named.name) if n)


def extract_targets(schema: GraphQLSchema, mutation: str, args: Mapping[str, Any]) -> list[Target]:
    """Every target one mutation's coerced arguments name."""
    if schema.mutation_type is None:
        raise UnmappedField("the schema has no mutations")
    field_def = schema.mutation_type.fields[mutation]
    out: list[Target] = []
    for arg_name, value in args.items():
        arg_type = field_def.args[arg_name].type
        unwrapped = arg_type.of_type if isinstance(arg_type, GraphQLNonNull) else arg_type
        if isinstance(unwrapped, GraphQLList) and isinstance(value, list) and \
                isinstance(get_named_type(unwrapped), GraphQLInputObjectType):
            # A list of launches: each element is judged on its own.
            for i, item in enumerate(value):
                _walk(mutation, None, arg_name, [item], arg_type, f"{mutation}.{arg_name}[{i}]", out)
        else:
            _walk(mutation, None, arg_name, value, arg_type, f"{mutation}.{arg_name}", out)
    return out


# Dagster runs `pipelineName or jobName` (dagster_graphql/implementation/utils.py pipeline_selector_from_graphql).
_EXECUTED_FIRST = ("JobOrPipelineSelector.pipelineName", "JobOrPipelineSelector.jobName")


def executed_jobs(targets: Iterable[Target]) -> dict[str, str]:
    """The job Dagster will execute for each launch that names one."""
    by_launch: dict[str, dict[str, str]] = {}
    for t in targets:
        if t.kind is Kind.job:
            by_launch.setdefault(t.launch, {})[t.field] = t.name
    out: dict[str, str] = {}
    for launch, fields in by_launch.items():
        for field in _EXECUTED_FIRST:
            if field in fields:
                out[launch] = fields[field]
                break
        else:
            out[launch] = next(iter(fields.values()))
    return out


MAX_AUDIT_NAMES = 20


def audit_targets(targets: Iterable[Target]) -> dict[str, list[str]]:
    """Targets by kind for the audit and logs: executed jobs only, and long lists cut to a count."""
    targets = list(targets)
    executed = executed_jobs(targets)
    out: dict[str, list[str]] = {}
    for t in targets:
        if t.kind is Kind.job and executed.get(t.launch) != t.name:
            continue  # a shadowed `jobName`: Dagster does not run it
        names = out.setdefault(t.kind.value, [])
        if t.name not in names:
            names.append(t.name)
    for kind, names in out.items():
        if len(names) > MAX_AUDIT_NAMES:
            out[kind] = [*names[:MAX_AUDIT_NAMES], f"... and {len(names) - MAX_AUDIT_NAMES} more"]
    return out
