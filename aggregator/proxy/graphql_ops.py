"""Parse, validate and classify GraphQL documents against Dagster's schema.

The proxy never trusts `operationName` or the UI's `?op=` hint: it parses the whole document with
graphql-core, validates it against the schema Dagster itself serves, and lists every root field of every
operation, following fragment spreads and inline fragments and ignoring aliases. Anything that fails to
parse or validate is rejected before it reaches Dagster.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    parse,
    print_schema,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200_000
# graphql-core's parser guards recursion, but a token cap stops a cheap-to-send, expensive-to-parse document.
MAX_TOKENS = 20_000


class GraphQLRejected(ValueError):
    """The document cannot be authorized: unparseable, invalid against the schema, or ambiguous."""


@functools.cache
def dagster_schema() -> GraphQLSchema:
    """Dagster's GraphQL schema as a plain graphql-core schema (built once; takes a few seconds).

    Rebuilt from SDL so argument values coerce to plain dicts keyed by schema names, not graphene's
    snake_case containers."""
    from dagster_graphql.schema import create_schema

    return build_schema(print_schema(create_schema().graphql_schema))


@dataclass(frozen=True, eq=False)
class RootField:
    operation_type: str  # "query" | "mutation" | "subscription"
    name: str  # the schema field name, never the alias
    node: FieldNode
    operation: OperationDefinitionNode


@dataclass(frozen=True, eq=False)
class ParsedDocument:
    """A validated document and every root field of every operation in it."""

    query: str
    document: DocumentNode
    root_fields: tuple[RootField, ...]

    @property
    def operation_types(self) -> frozenset[str]:
        return frozenset(f.operation_type for f in self.root_fields)

    @property
    def mutations(self) -> tuple[RootField, ...]:
        return tuple(f for f in self.root_fields if f.operation_type == "mutation")

    def label(self) -> str:
        """Short description for logs and audit: `mutation:launchRun,terminateRun`."""
        kinds: dict[str, list[str]] = {}
        for f in self.root_fields:
            kinds.setdefault(f.operation_type, []).append(f.name)
        return " ".join(f"{k}:{','.join(sorted(set(v)))}" for k, v in sorted(kinds.items()))


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def iter_root_fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], seen: frozenset[str]
) -> Iterator[FieldNode]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from iter_root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                # Validation rejects both; refuse rather than skip, so a gap here can never allow.
                raise GraphQLRejected(f"fragment {name!r} is unknown or cyclic")
            yield from iter_root_fields(fragments[name].selection_set, fragments, seen | {name})


class GraphQLInspector:
    """Stateless apart from an LRU cache of validated documents keyed by query text."""

    def __init__(self, schema: GraphQLSchema, cache_size: int = 2048) -> None:
        self.schema = schema
        self._parse = functools.lru_cache(maxsize=cache_size)(self._parse_uncached)

    def inspect(self, query: object) -> ParsedDocument:
        if not isinstance(query, str) or not query.strip():
            raise GraphQLRejected("no GraphQL query in the request")
        if len(query) > MAX_QUERY_CHARS:
            raise GraphQLRejected(f"GraphQL query longer than {MAX_QUERY_CHARS} characters")
        return self._parse(query)

    def _parse_uncached(self, query: str) -> ParsedDocument:
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as exc:
            raise GraphQLRejected(f"GraphQL syntax error: {exc.message}") from exc
        errors = validate(self.schema, document)
        if errors:
            raise GraphQLRejected(f"GraphQL document invalid: {errors[0].message}")
        fragments = fragments_of(document)
        fields: list[RootField] = []
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if not operations:
            raise GraphQLRejected("GraphQL document has no operation")
        for op in operations:
            op_type = op.operation.value
            for node in iter_root_fields(op.selection_set, fragments, frozenset()):
                fields.append(RootField(op_type, node.name.value, node, op))
        return ParsedDocument(query=query, document=document, root_fields=tuple(fields))

    def arguments(self, field: RootField, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        """Argument values of one root field, with variables substituted and coerced as Dagster will."""
        root = {
            "query": self.schema.query_type,
            "mutation": self.schema.mutation_type,
            "subscription": self.schema.subscription_type,
        }[field.operation_type]
        assert root is not None
        field_def = root.fields[field.name]
        coerced = get_variable_values(self.schema, field.operation.variable_definitions or (), dict(variables or {}))
        if isinstance(coerced, list):
            raise GraphQLRejected(f"GraphQL variables invalid: {coerced[0].message}")
        try:
            return get_argument_values(field_def, field.node, coerced)
        except GraphQLError as exc:
            raise GraphQLRejected(f"GraphQL arguments invalid: {exc.message}") from exc


def names(values: Sequence[Any] | None) -> list[str]:
    return [v for v in (values or []) if isinstance(v, str)]
