"""Connections: named connector instances declared in specs, built into Dagster resources."""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

from connectors.registry import CONNECTOR_TYPES, connector_type

# Spelled out for type checkers and pydantic's messages; the registry is the source, and this must match it.
ConnectionType = Literal["files", "sql", "rest"]
if get_args(ConnectionType) != tuple(CONNECTOR_TYPES):  # pragma: no cover - caught by any import in tests
    raise RuntimeError(f"ConnectionType {get_args(ConnectionType)} differs from the registry {tuple(CONNECTOR_TYPES)}")
# Which stream `type` a connection of each type reads.
STREAM_TYPE_OF: dict[str, str] = {c.name: c.stream_type for c in CONNECTOR_TYPES.values()}


class MissingSecretError(ValueError):
    """A `{env: NAME}` in a connection's config names a variable that is not set."""


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
    """The resource class of a connection type (imported on first use)."""
    cls: type[dg.ConfigurableResource] = connector_type(conn_type).resource_class()
    return cls


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


def resolved_env_vars(value: Any, name: str, environ: Any = None, path: tuple[str | int, ...] = ()) -> Any:
    """Replace every `{env: NAME}` with the variable's value now, as a run does when it starts: for commands
    that use a connection outside a run (`connections check/discover`). A missing variable raises
    MissingSecretError naming the connection, the field and the variable, never a value."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            var = value["env"]
            if var not in env:
                field = ".".join(str(p) for p in ("config", *path))
                raise MissingSecretError(
                    f"connection {name!r}: {field} reads environment variable {var}, which is not set; "
                    "set it here as the run's environment would"
                )
            return env[var]
        return {k: resolved_env_vars(v, name, env, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved_env_vars(v, name, env, (*path, i)) for i, v in enumerate(value)]
    return value


def build_resource(conn: Connection, *, resolve_as: str | None = None) -> dg.ConfigurableResource:
    """The Dagster resource for a connection; raises pydantic's ValidationError on bad config.

    Secrets stay `dg.EnvVar`s, resolved when a run starts; with `resolve_as` (the connection's name) they are
    resolved now, for use outside a run."""
    config = with_env_vars(conn.config) if resolve_as is None else resolved_env_vars(conn.config, resolve_as)
    return resource_class(conn.type)(**config)


def build_destination(conn: Connection, *, resolve_as: str | None = None) -> dg.ConfigurableResource:
    """A sql connection used as a pipeline destination."""
    from aggregator.destinations.sql import SqlDestination

    if conn.type != "sql":
        raise ValueError(f"a destination must be a sql connection, not {conn.type}")
    url = conn.config.get("url")
    return SqlDestination(url=with_env_vars(url) if resolve_as is None else resolved_env_vars(url, resolve_as, path=("url",)))
