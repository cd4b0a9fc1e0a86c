"""Connections: named connector instances declared in specs, built into Dagster resources."""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

ConnectionType = Literal["files", "sql", "rest"]
# Which stream `type` a connection of each type reads.
STREAM_TYPE_OF: dict[str, str] = {"files": "file", "sql": "sql", "rest": "rest"}


class EnvRef(BaseModel):
    """A value read from an environment variable when a run starts: `{env: NAME}`. Never stored resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")


class Connection(BaseModel):
    """A connector instance: its type and the connector's own config (see docs/connectors/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ConnectionType = Field(description="Connector: files, sql or rest.")
    description: str | None = Field(None, description="What this connection reaches.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector's configuration; secrets as `{env: NAME}`, never inline.",
    )


def resource_class(conn_type: str) -> type[dg.ConfigurableResource]:
    # Imported here so that loading specs does not import every connector's dependencies.
    if conn_type == "files":
        from connectors.files.resource import FilesResource

        return FilesResource
    if conn_type == "sql":
        from connectors.sql.resource import SqlResource

        return SqlResource
    if conn_type == "rest":
        from connectors.rest.resource import RestApiResource

        return RestApiResource
    raise ValueError(f"unknown connection type {conn_type!r}; allowed: files, sql, rest")


def with_env_vars(value: Any) -> Any:
    """Replace every `{env: NAME}` in a config tree with `dg.EnvVar(NAME)`, resolved only at run time."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return dg.EnvVar(value["env"])
        return {k: with_env_vars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_env_vars(v) for v in value]
    return value


def env_refs(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every `{env: NAME}` in a config tree with its path, for validation."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return [(path, value["env"])]
        return [ref for k, v in value.items() for ref in env_refs(v, (*path, k))]
    if isinstance(value, list):
        return [ref for i, v in enumerate(value) for ref in env_refs(v, (*path, i))]
    return []


def build_resource(conn: Connection) -> dg.ConfigurableResource:
    """The Dagster resource for a connection; raises pydantic's ValidationError on bad config."""
    return resource_class(conn.type)(**with_env_vars(conn.config))


def build_destination(conn: Connection) -> dg.ConfigurableResource:
    """A sql connection used as a pipeline destination."""
    from aggregator.destinations.sql import SqlDestination

    if conn.type != "sql":
        raise ValueError(f"a destination must be a sql connection, not {conn.type}")
    return SqlDestination(url=with_env_vars(conn.config.get("url")))
