"""Parse, validate and classify GraphQL documents against Dagster's schema.

The proxy never trusts `operationName` or the UI's `?op=` hint: it parses the whole document with
graphql-core, validates it against the schema Dagster itself serves, and lists every root field of every
operation, following fragment spreads and inline fragments and ignoring aliases. Anything that fails to
parse or validate is rejected before it reaches Dagster.

Cost is bounded before validation: graphql-core's overlapping-fields rule is quadratic, so a 57 KB document of
1,500 aliased fields took 8-10 s to validate. A scan of the token stream caps tokens, aliases and depth and
stops at the first limit (`prescan`); after parsing, a linear walk caps root fields, selections and same-name
fields per selection set (`DocumentLimits`) before `validate` runs. Validation runs in a small executor of
its own, off the event loop, and validated documents (and refusals) are kept in an LRU cache keyed by the
document's hash: the UI sends the same few hundred documents over and over.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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
    Source,
    TokenKind,
    build_schema,
    parse,
    print_schema,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.language import Lexer

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200_000
# graphql-core's parser guards recursion, but a token cap stops a cheap-to-send, expensive-to-parse document.
MAX_TOKENS = 20_000


@dataclass(frozen=True)
class DocumentLimits:
    """Caps checked by a linear walk of the parsed document, before (quadratic) validation.

    Sized from the Dagster UI's own documents, the largest of which have a few hundred selections, a handful
    of root fields and no more than a few aliases."""

    max_aliases: int = 100
    max_root_fields: int = 64
    max_selections: int = 8_000
    max_depth: int = 30
    # Same-name fields in one selection set are compared pairwise by validation (quadratic, recursing into
    # their sub-selections): 1,000 copies of one field with a sub-selection took ~0.9 s.
    max_same_name: int = 10


class GraphQLRejected(ValueError):
    """The document cannot be authorized: unparseable, invalid against the schema, or ambiguous."""


class GraphQLBusy(Exception):
    """Every validation slot is taken; the request is refused (503) instead of queueing without bound."""


def prescan(query: str, limits: DocumentLimits) -> None:
    """Count tokens, aliases, nesting and same-name fields on the token stream; stop at the first limit.

    The lexer costs about a tenth of the parser (which builds every node), and stopping early means a
    document of 1,500 aliases costs the ~1,000 tokens up to its 101st alias, not a full parse. Outside
    parentheses (arguments, variable definitions and their object values live inside them) a `name :` pair
    is an alias, and inside a selection set every other name is a field, except the name after `...`/`on`
    (fragment and type names), after `@` (directives) and after an alias (the aliased field)."""
    lexer = Lexer(Source(query))
    tokens = aliases = parens = 0
    sets: list[dict[str, int]] = []
    skip_name = previous_was_name = False
    try:
        while True:
            token = lexer.advance()
            kind = token.kind
            if kind == TokenKind.EOF:
                return
            tokens += 1
            if tokens > MAX_TOKENS:
                raise GraphQLRejected(f"GraphQL document has more than {MAX_TOKENS} tokens")
            if kind == TokenKind.PAREN_L:
                parens += 1
            elif kind == TokenKind.PAREN_R:
                parens -= 1
            elif parens:
                pass
            elif kind == TokenKind.BRACE_L:
                sets.append({})
                if len(sets) > limits.max_depth:
                    raise GraphQLRejected(f"GraphQL document nested deeper than {limits.max_depth} levels")
            elif kind == TokenKind.BRACE_R:
                if sets:
                    sets.pop()
            elif kind in (TokenKind.SPREAD, TokenKind.AT):
                skip_name = True
            elif kind == TokenKind.COLON and previous_was_name:
                aliases += 1
                skip_name = True
                if aliases > limits.max_aliases:
                    raise GraphQLRejected(f"GraphQL document has more than {limits.max_aliases} aliases")
            elif kind == TokenKind.NAME and sets:
                name = str(token.value)
                if skip_name:
                    skip_name = name == "on"  # `... on Type`: the type name is skipped as well
                else:
                    seen = sets[-1][name] = sets[-1].get(name, 0) + 1
                    if seen > limits.max_same_name:
                        raise GraphQLRejected(f"GraphQL selection set asks for {name!r} more than "
                                              f"{limits.max_same_name} times")
            previous_was_name = kind == TokenKind.NAME and not parens
    except GraphQLError as exc:
        if isinstance(exc, GraphQLRejected):
            raise
        raise GraphQLRejected(f"GraphQL syntax error: {exc.message}") from exc


def check_limits(document: DocumentNode, limits: DocumentLimits) -> None:
    """Count aliases, selections, root fields and depth in one pass over the AST (fragments counted once
    per definition, their spreads add depth through their definitions' own walk)."""
    aliases = selections = 0
    stack: list[tuple[SelectionSetNode, int]] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if len(definition.selection_set.selections) > limits.max_root_fields:
                raise GraphQLRejected(f"GraphQL operation has more than {limits.max_root_fields} root fields")
            stack.append((definition.selection_set, 1))
        elif isinstance(definition, FragmentDefinitionNode):
            stack.append((definition.selection_set, 1))
    while stack:
        selection_set, depth = stack.pop()
        if depth > limits.max_depth:
            raise GraphQLRejected(f"GraphQL document nested deeper than {limits.max_depth} levels")
        names: dict[str, int] = {}
        for selection in selection_set.selections:
            selections += 1
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    aliases += 1
                key = (selection.alias or selection.name).value
                names[key] = names.get(key, 0) + 1
                if names[key] > limits.max_same_name:
                    raise GraphQLRejected(f"GraphQL selection set asks for {key!r} more than "
                                          f"{limits.max_same_name} times")
            child = getattr(selection, "selection_set", None)
            if child is not None:
                stack.append((child, depth + 1))
        if aliases > limits.max_aliases:
            raise GraphQLRejected(f"GraphQL document has more than {limits.max_aliases} aliases")
        if selections > limits.max_selections:
            raise GraphQLRejected(f"GraphQL document has more than {limits.max_selections} selections")


# Dagster's schema as SDL, shipped for the pinned dagster-graphql: building it from graphene took 25 s of the
# proxy's start at load 25 (2 s from this file), on the critical path of `aggregator dev` (issue 20).
# aggregator_tests/proxy/test_graphql_schema_file.py fails when it no longer matches the installed Dagster.
SHIPPED_SCHEMA = Path(__file__).with_name("dagster_schema.graphql")
_SCHEMA_HEADER = "# dagster-graphql "


def dagster_schema_sdl() -> str:
    """The installed Dagster's GraphQL schema as SDL, with a version header (what the shipped file holds)."""
    import dagster_graphql
    from dagster_graphql.schema import create_schema

    return f"{_SCHEMA_HEADER}{dagster_graphql.__version__}\n{print_schema(create_schema().graphql_schema)}\n"


def _shipped_sdl() -> str | None:
    """The shipped SDL when it was made from the installed dagster-graphql, else None."""
    from importlib.metadata import version

    try:
        text = SHIPPED_SCHEMA.read_text()
    except OSError:
        return None
    header, _, sdl = text.partition("\n")
    return sdl if header == f"{_SCHEMA_HEADER}{version('dagster-graphql')}" else None


@functools.cache
def dagster_schema() -> GraphQLSchema:
    """Dagster's GraphQL schema as a plain graphql-core schema (built once).

    Built from SDL so argument values coerce to plain dicts keyed by schema names, not graphene's snake_case
    containers: the shipped SDL when its version matches, otherwise printed from the installed Dagster."""
    sdl = _shipped_sdl()
    if sdl is None:
        log.warning("%s was made for another dagster-graphql; building the schema from Dagster (slower)",
                    SHIPPED_SCHEMA.name)
        sdl = dagster_schema_sdl().partition("\n")[2]
    return build_schema(sdl)


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
    """Stateless apart from an LRU cache of validated documents (and of refusals) keyed by the query's hash."""

    def __init__(self, schema: GraphQLSchema, cache_size: int = 2048, limits: DocumentLimits | None = None,
                 workers: int = 1, queue: int = 64) -> None:
        self.schema = schema
        self.limits = limits or DocumentLimits()
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, ParsedDocument | GraphQLRejected] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = workers + queue
        self._in_use = 0
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="proxy-graphql")
        # Single flight: the UI opening a page sends the same documents from many tabs/components at once;
        # they share one validation instead of each taking a slot.
        self._in_flight: dict[bytes, asyncio.Future[ParsedDocument]] = {}

    @staticmethod
    def _key(query: object) -> bytes:
        if not isinstance(query, str) or not query.strip():
            raise GraphQLRejected("no GraphQL query in the request")
        if len(query) > MAX_QUERY_CHARS:
            raise GraphQLRejected(f"GraphQL query longer than {MAX_QUERY_CHARS} characters")
        return hashlib.sha256(query.encode("utf-8", "surrogatepass")).digest()

    def cached(self, query: object) -> ParsedDocument | None:
        """A cache hit (raising a cached refusal), or None when the document must be validated."""
        key = self._key(query)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if isinstance(hit, GraphQLRejected):
            raise GraphQLRejected(str(hit))
        return hit

    def inspect(self, query: object) -> ParsedDocument:
        """Synchronous: from a worker thread or a test. The event loop uses `inspect_async`."""
        hit = self.cached(query)
        if hit is not None:
            return hit
        if not isinstance(query, str):  # _key() already refused it; this narrows the type
            raise GraphQLRejected("no GraphQL query in the request")
        try:
            parsed: ParsedDocument | GraphQLRejected = self._parse_uncached(query)
        except GraphQLRejected as exc:
            parsed = exc
        with self._lock:
            self._cache[self._key(query)] = parsed
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if isinstance(parsed, GraphQLRejected):
            raise GraphQLRejected(str(parsed))
        return parsed

    async def inspect_async(self, query: object) -> ParsedDocument:
        """Cache hits answer on the loop; misses validate in the inspector's own bounded executor, one
        validation per distinct document however many requests carry it."""
        hit = self.cached(query)
        if hit is not None:
            return hit
        key = self._key(query)
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if self._in_use >= self._capacity:
            raise GraphQLBusy
        self._in_use += 1
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.inspect, query)
        self._in_flight[key] = future
        try:
            return await asyncio.shield(future)
        finally:
            self._in_flight.pop(key, None)
            self._in_use -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _parse_uncached(self, query: str) -> ParsedDocument:
        prescan(query, self.limits)
        try:
            document = parse(query, max_tokens=MAX_TOKENS)
        except GraphQLError as exc:
            raise GraphQLRejected(f"GraphQL syntax error: {exc.message}") from exc
        check_limits(document, self.limits)
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
        if root is None:  # a validated document only uses operation types the schema has
            raise GraphQLRejected(f"the schema has no {field.operation_type} type")
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
