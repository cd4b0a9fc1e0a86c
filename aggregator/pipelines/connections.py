"""Connections: named connector instances declared in specs, built into Dagster resources."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import BaseModel, ConfigDict, Field

from aggregator.pipelines.uploads_objects import uploads_files_config
from aggregator.settings import Settings, load_settings
from connectors.connector_type import as_source
from connectors.registry import CONNECTOR_TYPES, STREAM_TYPE_OF, ConnectionType, connector_type
from connectors.secrets import (
    EnvRef,
    MissingSecretError,
    Resolver,
    SecretNameError,
    SecretReferenceError,
)
from connectors.source import Source


class Connection(BaseModel):
    """A connector instance: its type and the connector's own config (see docs/connectors/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ConnectionType = Field(description=f"Connector type: {', '.join(CONNECTOR_TYPES)} (docs/connectors/).")
    description: str | None = Field(None, description="What this connection reaches.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="The connector's configuration; secrets as `{env: NAME}`, never inline.",
    )


def resource_class(conn_type: str) -> type[dg.ConfigurableResource]:
    """The resource class of a connection type."""
    return connector_type(conn_type).resource


def _secrets(value: Any, path: tuple[str, ...], resolve_as: str | None, resolver: Resolver | None) -> Any:
    """`{env: NAME}`s under `value` as `dg.EnvVar`s (resolve_as None), else resolved now by `resolver`."""
    resolver = resolver or Resolver()
    if resolve_as is None:
        return resolver.deferred(value, "connection", path)
    return resolver.resolve(value, f"connection {resolve_as!r}", path)


def build_resource(conn: Connection, *, resolve_as: str | None = None, resolver: Resolver | None = None,
                   settings: Settings | None = None) -> dg.ConfigurableResource:
    """The Dagster resource for a connection; raises pydantic's ValidationError on bad config, and
    SecretReferenceError (a ValueError with the field's path) for a `{env: NAME}` it may not read.

    Secrets stay `dg.EnvVar`s, resolved when a run starts; with `resolve_as` (the connection's name) they are
    resolved now, for use outside a run (by `resolver`, which remembers the values for redaction). A files
    `base_dir` under the uploads root follows the uploads into object storage when `settings` (default: this
    process's) put them there, so runs, checks and previews all read what the proxy delivered."""
    config = conn.config
    if conn.type == "files":
        config = uploads_files_config(config, settings or load_settings())
    return connector_type(conn.type).build(_secrets(config, ("config",), resolve_as, resolver))


def build_source(conn: Connection, name: str, resolver: Resolver | None = None) -> Source[Any]:
    """The connection `name` as a `Source` with its secrets resolved now (the CLI, the worker), by `resolver`
    (which remembers the values for redaction); the same errors as `build_resource`."""
    return as_source(build_resource(conn, resolve_as=name, resolver=resolver), name)


def build_destination(conn: Connection, *, resolve_as: str | None = None,
                      resolver: Resolver | None = None) -> dg.ConfigurableResource:
    """A sql connection used as a pipeline destination."""
    from aggregator.destinations.sql import SqlDestination

    if conn.type != "sql":
        raise ValueError(f"a destination must be a sql connection, not {conn.type}")
    return SqlDestination(url=_secrets(conn.config.get("url"), ("config", "url"), resolve_as, resolver),
                          declared_in_spec=True)


__all__ = ["STREAM_TYPE_OF", "EnvRef", "MissingSecretError", "SecretNameError", "SecretReferenceError"]
