"""The target map against Dagster's installed schema: no input field a scoped mutation can reach is unmapped."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLInputObjectType, GraphQLInputType, GraphQLSchema, get_named_type

from aggregator.proxy.graphql_ops import dagster_schema
from aggregator.proxy.policy.rbac import MUTATION_ROLES, SCOPABLE, Role
from aggregator.proxy.policy.target_fields import (
    HARMLESS,
    KEY_INPUT_FIELDS,
    SCALAR_TARGET_TYPES,
    TARGET_FIELDS,
    WALK,
    Kind,
    classify,
)

# Every mutation a launcher or editor may send (scoped or not): its targets are audited and, for SCOPABLE
# ones, checked against the grant. Admin mutations need an unscoped grant and are not walked.
WALKED = sorted(name for name, role in MUTATION_ROLES.items() if Role.launcher <= role <= Role.editor)


def reachable(schema: GraphQLSchema) -> Iterator[tuple[str, str | None, str, GraphQLInputType, str | None]]:
    """(mutation, owner type or None for an argument, name, type, classification) for every field the walker
    can meet: arguments, and fields of input objects entered through WALK."""
    assert schema.mutation_type is not None

    def fields_of(mutation: str, type_: GraphQLInputType, seen: frozenset[str]) -> Iterator[
            tuple[str, str | None, str, GraphQLInputType, str | None]]:
        named = get_named_type(type_)
        if not isinstance(named, GraphQLInputObjectType) or named.name in seen:
            return
        for name, field in named.fields.items():
            what = classify(mutation, named.name, name)
            yield mutation, named.name, name, field.type, what
            if what == WALK:
                yield from fields_of(mutation, field.type, seen | {named.name})

    for mutation in WALKED:
        for name, arg in schema.mutation_type.fields[mutation].args.items():
            what = classify(mutation, None, name)
            yield mutation, None, name, arg.type, what
            if what == WALK:
                yield from fields_of(mutation, arg.type, frozenset())


def _label(mutation: str, owner: str | None, name: str) -> str:
    return f"{mutation}({name})" if owner is None else f"{owner}.{name} (via {mutation})"


def test_every_reachable_input_field_is_a_target_a_walk_or_harmless() -> None:
    """A Dagster upgrade that adds a selecting field to a mutation's input must fail here until it is mapped
    in aggregator/proxy/policy/target_fields.py (as a target kind, WALK, or HARMLESS with a reason)."""
    unmapped = sorted({_label(m, o, n) for m, o, n, _t, what in reachable(dagster_schema()) if what is None})
    assert unmapped == [], f"map these in aggregator/proxy/policy/target_fields.py: {unmapped}"


def test_no_stale_entries_in_the_target_map() -> None:
    """Every entry names something the walker can meet in today's schema (a typo would be a silent gap)."""
    met: set[str] = set()
    for mutation, owner, name, _t, _what in reachable(dagster_schema()):
        met.add(f"{mutation}({name})" if owner is None else f"{owner}.{name}")
        if owner is not None:
            met.add(f"{mutation}:{owner}.{name}")
    stale = sorted((set(TARGET_FIELDS) | set(HARMLESS)) - met)
    assert stale == [], f"not reachable in Dagster's schema: {stale}"
    assert not set(TARGET_FIELDS) & set(HARMLESS), "an entry cannot be both a target and harmless"


def test_walked_fields_are_input_objects_and_targets_are_readable() -> None:
    """WALK must point at an input object, and a target at a value the extractor can turn into names."""
    problems: list[str] = []
    schema = dagster_schema()
    for mutation, owner, name, type_, what in reachable(schema):
        named = get_named_type(type_)
        if what == WALK and not isinstance(named, GraphQLInputObjectType):
            problems.append(f"{_label(mutation, owner, name)} is WALK but of type {named}")
        if isinstance(what, Kind) and named.name not in SCALAR_TARGET_TYPES | set(KEY_INPUT_FIELDS):
            problems.append(f"{_label(mutation, owner, name)} is a target of unreadable type {named}")
    for type_name, fields in KEY_INPUT_FIELDS.items():
        input_type = schema.type_map[type_name]
        assert isinstance(input_type, GraphQLInputObjectType)
        if set(input_type.fields) != fields:
            problems.append(f"{type_name} now has fields {sorted(input_type.fields)}; the extractor reads "
                            f"{sorted(fields)}")
    assert problems == []


def test_every_scopable_mutation_names_at_least_one_target_field() -> None:
    """A scoped grant is decided on targets; a scopable mutation without a target field could never pass."""
    with_targets = {m for m, _o, _n, _t, what in reachable(dagster_schema()) if isinstance(what, Kind)}
    assert SCOPABLE <= with_targets, sorted(SCOPABLE - with_targets)
