"""The permission table against Dagster's own schema, and the GraphQL classifier."""

from __future__ import annotations

import pytest
from graphql import build_client_schema, get_introspection_query, graphql_sync

from aggregator.proxy.graphql_ops import GraphQLInspector, GraphQLRejected, dagster_schema
from aggregator.proxy.policy.launch_tags import stamp_user
from aggregator.proxy.policy.rbac import MUTATION_ROLES, SCOPABLE, Role, required_role


def test_every_mutation_in_dagsters_schema_is_classified() -> None:
    """A Dagster upgrade that adds a mutation must fail here until someone decides its role."""
    from dagster_graphql.schema import create_schema

    introspection = graphql_sync(create_schema().graphql_schema, get_introspection_query()).data
    assert introspection is not None
    mutation_type = build_client_schema(introspection).mutation_type
    assert mutation_type is not None
    unclassified = sorted(set(mutation_type.fields) - set(MUTATION_ROLES))
    assert unclassified == [], f"classify these in aggregator/proxy/rbac.py: {unclassified}"
    stale = sorted(set(MUTATION_ROLES) - set(mutation_type.fields))
    assert stale == [], f"no longer in Dagster's schema: {stale}"
    assert SCOPABLE <= set(MUTATION_ROLES)


def test_unknown_mutation_is_denied_by_default() -> None:
    assert required_role("mutation", "someFutureMutation") is None
    assert required_role("mutation", "launchRun") is Role.launcher
    assert required_role("subscription", "pipelineRunLogs") is Role.viewer


@pytest.mark.parametrize("query, expected", [
    ("mutation { x: reloadWorkspace { __typename } }", {("mutation", "reloadWorkspace")}),
    ("mutation { ...F } fragment F on Mutation { ... on Mutation { reloadWorkspace { __typename } } }",
     {("mutation", "reloadWorkspace")}),
    (("query A { version } mutation B { logTelemetry(action: \"a\", clientId: \"b\", clientTime: \"c\", "
      "metadata: \"{}\") { __typename } }"), {("query", "version"), ("mutation", "logTelemetry")}),
    ("{ __typename version }", {("query", "__typename"), ("query", "version")}),
])
def test_classifier_follows_fragments_and_ignores_aliases(inspector: GraphQLInspector, query: str,
                                                          expected: set[tuple[str, str]]) -> None:
    parsed = inspector.inspect(query)
    assert {(f.operation_type, f.name) for f in parsed.root_fields} == expected


@pytest.mark.parametrize("query", [
    "mutation { launchRun(", "mutation { notAField }", "", None, "fragment F on Mutation { version }",
    "mutation { reloadWorkspace { __typename } } mutation { reloadWorkspace { __typename } }",
])
def test_unparseable_or_invalid_documents_are_rejected(inspector: GraphQLInspector, query: object) -> None:
    with pytest.raises(GraphQLRejected):
        inspector.inspect(query)


def test_launch_is_rewritten_with_the_user_tag(inspector: GraphQLInspector) -> None:
    query = ('mutation M($x: String!) { launchRun(executionParams: {selector: {jobName: "j", repositoryName: "r", '
             'repositoryLocationName: "l"}, executionMetadata: {tags: [{key: "user", value: "mallory"}, '
             '{key: "team", value: $x}]}}) { __typename } }')
    rewritten = stamp_user(inspector, inspector.inspect(query), {"x": "finance"}, "alice")
    assert rewritten is not None
    new_query, variables = rewritten
    reparsed = inspector.inspect(new_query)  # still valid against the schema: no unused variables left
    args = inspector.arguments(reparsed.root_fields[0], variables)
    assert args["executionParams"]["executionMetadata"]["tags"] == [
        {"key": "team", "value": "finance"}, {"key": "user", "value": "alice"}]
    assert stamp_user(inspector, inspector.inspect("{ version }"), None, "alice") is None


def test_schema_is_dagsters(inspector: GraphQLInspector) -> None:
    assert inspector.schema is dagster_schema()


def test_docs_roles_table_matches_the_permission_table() -> None:
    """docs/security.md lists every mutation and its role; it must not drift from the code."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (\w+) \| (?:yes|no) \|$", doc, flags=re.MULTILINE))
    assert rows == {name: role.name for name, role in MUTATION_ROLES.items()}
    scoped = set(re.findall(r"^\| `(\w+)` \| \w+ \| yes \|$", doc, flags=re.MULTILINE))
    assert scoped == SCOPABLE
