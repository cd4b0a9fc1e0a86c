"""The shipped Dagster GraphQL schema (aggregator/proxy/dagster_schema.graphql) is the installed Dagster's.

The proxy builds its document inspector from that file instead of from graphene (25 s of its start-up at load
25, issue 20); a stale file would let the proxy judge documents against another schema than Dagster's."""

from __future__ import annotations

from graphql import print_schema

from aggregator.proxy.graphql_ops import SHIPPED_SCHEMA, _shipped_sdl, dagster_schema, dagster_schema_sdl

REGENERATE = ('python -c "from aggregator.proxy.graphql_ops import SHIPPED_SCHEMA, dagster_schema_sdl; '
              'SHIPPED_SCHEMA.write_text(dagster_schema_sdl())"')


def test_shipped_schema_is_the_installed_dagsters() -> None:
    assert SHIPPED_SCHEMA.read_text() == dagster_schema_sdl(), f"stale {SHIPPED_SCHEMA.name}; regenerate: {REGENERATE}"


def test_the_proxy_uses_the_shipped_schema() -> None:
    sdl = _shipped_sdl()
    assert sdl is not None, "the version header does not match the installed dagster-graphql"
    assert print_schema(dagster_schema()).strip() == sdl.strip()
