"""What the worker does for the API: check and discover a connection, read a source's schema, preview a
source's or a transform's first rows, send a test message through an alert channel. Each runs in a child process (sandbox.py) with the pipelines'
environment; secrets are resolved here and only here, by a `Resolver` that remembers every value so the
answer can be redacted by value before it leaves.

Specs are read from this process's `AGGREGATOR_PIPELINES`, never from the caller: the proxy names what to
act on, it cannot hand the worker a connection of its own making.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregator.destinations.schema import column_name
from aggregator.pipelines.connections import Connection, build_source
from aggregator.pipelines.graph import Graph, Node
from aggregator.pipelines.isolate import load_isolated
from aggregator.pipelines.load import Specs
from aggregator.pipelines.preview import MASK
from aggregator.pipelines.spec import SourceSpec, TransformSpec
from aggregator.settings import load_settings
from aggregator.specstore.current import current_texts
from connectors.registry import CONNECTOR_TYPES
from connectors.secrets import Resolver, SecretReferenceError
from connectors.source import Source
from connectors.sql.engines import deny_attach
from connectors.values import json_value


class CallError(Exception):
    """A call that cannot be answered with data; `status` is the HTTP status the worker answers."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionCall(_Strict):
    connection: str = Field(description="A connection declared in the specs.")
    stream: dict[str, Any] | None = Field(None, description="Discover only: one stream of that connection.")


class SourceCall(_Strict):
    pipeline: str
    source: str
    limit: int = Field(20, ge=1, le=1000, description="Rows read at most (previews).")


class TransformCall(_Strict):
    pipeline: str
    transform: str
    source_rows: int = Field(100, ge=1, le=1000, description="Rows read from each upstream source.")
    limit: int = Field(20, ge=1, le=1000, description="Rows of the transform's result returned at most.")


class AlertTestCall(_Strict):
    channel: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="A channel under the global alerts.channels.")
    requested_by: str = Field(max_length=200, description="Who asked; named in the test message.")


def first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:500]


def _specs() -> tuple[Specs, Graph]:
    """What loads, as the code location loads it: a broken file drops only its own pipelines and connections."""
    settings = load_settings()
    loaded = load_isolated(settings.pipelines_dir, settings, current_texts(settings))
    _errors.clear()
    _errors.extend(str(e) for e in loaded.errors)
    return loaded.specs, loaded.graph


_errors: list[str] = []  # of the last load in this (single-call) process


def _not_loaded(what: str, name: str) -> CallError:
    """404 for a name no spec declares; 409 with the spec errors that name it when it is declared but broken."""
    related = [e for e in _errors if repr(name) in e or f".{name}." in e or f" {name}:" in e]
    if related:
        return CallError(409, f"{what} {name!r} is not loaded: {related[0]}")
    return CallError(404, f"no {what} {name!r} in the specs")


def _resource(conn: Connection, name: str, resolver: Resolver) -> Source[Any]:
    try:
        return build_source(conn, name, resolver)
    except (ValidationError, ValueError) as exc:
        # Secret errors name the field and the variable, never a value; egress errors name the rule.
        raise CallError(409, f"connection {name!r} cannot be built: {first_line(exc)}") from None


def check(call: ConnectionCall, resolver: Resolver) -> dict[str, Any]:
    specs, _ = _specs()
    if call.connection not in specs.connections:
        raise _not_loaded("connection", call.connection)
    resource = _resource(specs.connections[call.connection][0], call.connection, resolver)
    try:
        return {"ok": True, "message": str(resource.check())}
    except Exception as exc:  # noqa: BLE001 - a failed check is the answer
        return {"ok": False, "message": f"connection {call.connection!r}: {first_line(exc)}"}


def discover(call: ConnectionCall, resolver: Resolver) -> list[dict[str, Any]]:
    specs, _ = _specs()
    if call.connection not in specs.connections:
        raise _not_loaded("connection", call.connection)
    conn = specs.connections[call.connection][0]
    resource = _resource(conn, call.connection, resolver)
    stream = None
    if call.stream is not None:
        try:
            stream = CONNECTOR_TYPES[conn.type].stream_model.model_validate(call.stream)
        except ValidationError as exc:
            raise CallError(400, f"stream: {exc.errors()[0]['msg']}") from None
    try:
        infos = resource.discover(stream)
    except Exception as exc:  # noqa: BLE001 - connector errors name what failed
        raise CallError(409, f"discover on {call.connection!r} failed: {first_line(exc)}") from None
    return [{"name": i.name, "columns": {k: str(getattr(v, "value", v)) for k, v in i.columns.items()},
             "detail": i.detail} for i in infos]


def _source(graph: Graph, specs: Specs, pipeline: str, source: str) -> tuple[Connection, SourceSpec]:
    node = graph.nodes.get((pipeline, source))
    if node is None or not isinstance(node.spec, SourceSpec):
        if any(p.name == pipeline for p, _, _ in specs.pipelines):
            raise CallError(404, f"no source {source!r} in pipeline {pipeline!r}")
        raise _not_loaded("pipeline", pipeline)
    return specs.connections[node.spec.connection][0], node.spec


def source_schema(call: SourceCall, resolver: Resolver) -> dict[str, Any]:
    """The columns a source's stream has now ({column: portable type}), or why discovery failed."""
    specs, graph = _specs()
    conn, spec = _source(graph, specs, call.pipeline, call.source)
    try:
        resource = _resource(conn, spec.connection, resolver)
        infos = resource.discover(spec.stream, spec.type_hints())  # typed as the load types it
    except CallError as exc:
        return {"columns": None, "error": exc.detail}
    except Exception as exc:  # noqa: BLE001 - connector errors name what failed
        return {"columns": None, "error": f"connection {spec.connection!r}: {first_line(exc)}"}
    # Named as the load names them in the table (a JSON key 'Order ID' is column order_id).
    columns = {column_name(c): str(getattr(t, "value", t)) for c, t in infos[0].columns.items()} if infos else {}
    return {"columns": columns, "error": None}


def _masked(columns: list[str], rows: list[list[Any]], sensitive: set[str]) -> list[list[Any]]:
    if not sensitive:
        return rows
    return [[MASK if c in sensitive and v is not None else v for c, v in zip(columns, row, strict=True)]
            for row in rows]


def read_rows(conn: Connection, spec: SourceSpec, limit: int, resolver: Resolver) -> dict[str, Any]:
    """The first `limit` rows of a source stream, unmasked (a transform preview computes over them); reading
    stops there and nothing is written."""
    resource = _resource(conn, spec.connection, resolver)
    columns: dict[str, str] = {}
    rows: list[list[Any]] = []
    truncated = False
    batches = resource.read(spec.stream, None, None, spec.type_hints())
    try:
        for batch in batches:
            for column in batch.columns:
                if column not in columns and column not in batch.untyped:
                    columns[column] = batch.types[column].value
            for row in batch.rows:
                if len(rows) == limit:
                    truncated = True
                    break
                rows.append([json_value(v) for v in row])
            if truncated:
                break
    except CallError:
        raise
    except Exception as exc:  # noqa: BLE001 - connector errors name what failed
        raise CallError(409, f"reading source {spec.name!r} (connection {spec.connection!r}) failed: "
                        f"{first_line(exc)}") from None
    finally:
        batches.close()  # stop reading: pages or files past the limit are never fetched
    return {"columns": columns, "rows": rows, "truncated": truncated}


def preview_source(call: SourceCall, resolver: Resolver) -> dict[str, Any]:
    specs, graph = _specs()
    conn, spec = _source(graph, specs, call.pipeline, call.source)
    preview = read_rows(conn, spec, call.limit, resolver)
    preview["rows"] = _masked(list(preview["columns"]), preview["rows"], set(spec.sensitive_columns))
    return preview


SQLITE_TYPES = {"integer": "INTEGER", "float": "REAL", "boolean": "INTEGER", "text": "TEXT",
                "timestamp": "TEXT", "date": "TEXT"}


def _upstream_order(node: Node) -> list[Node]:
    order: list[Node] = []
    seen: set[int] = set()

    def visit(n: Node) -> None:
        if id(n) in seen:
            return
        seen.add(id(n))
        for up in n.upstream.values():
            visit(up)
        order.append(n)

    visit(node)
    return order


def preview_transform(call: TransformCall, resolver: Resolver) -> dict[str, Any]:
    """The transform's SQL over previewed rows of its upstream sources, in a scratch SQLite database in a
    temporary directory; nothing touches the warehouse. Columns any upstream or the transform marks
    sensitive are masked in the result."""
    from aggregator.destinations.sql import SqlDestination
    from aggregator.pipelines.transform_sql import transform_sql
    from connectors.batches import type_of

    specs, graph = _specs()
    node = graph.nodes.get((call.pipeline, call.transform))
    if node is None or not isinstance(node.spec, TransformSpec):
        if any(p.name == call.pipeline for p, _, _ in specs.pipelines):
            raise CallError(404, f"no transform {call.transform!r} in pipeline {call.pipeline!r}")
        raise _not_loaded("pipeline", call.pipeline)
    order = _upstream_order(node)
    sensitive = {c for n in order for c in n.spec.sensitive_columns}
    with tempfile.TemporaryDirectory(prefix="aggregator-preview-") as scratch:
        path = Path(scratch) / "preview.db"
        destination = SqlDestination(url=f"sqlite:///{path}")
        conn = sqlite3.connect(path)
        conn.set_authorizer(deny_attach)  # the transform's SQL reads the scratch tables, no other file
        try:
            for up in order[:-1]:
                table = destination.quote(up.table)
                if isinstance(up.spec, SourceSpec):
                    connection = specs.connections[up.spec.connection][0]
                    rows = read_rows(connection, up.spec, call.source_rows, resolver)
                    cols = ", ".join(f"{destination.quote(c)} {SQLITE_TYPES.get(t, 'TEXT')}"
                                     for c, t in rows["columns"].items())
                    conn.execute(f"CREATE TABLE {table} ({cols})")
                    marks = ", ".join("?" for _ in rows["columns"])
                    conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows["rows"])  # noqa: S608 (a scratch table of quoted identifiers; values are ?)
                    conn.commit()
                else:
                    conn.execute(f"CREATE TABLE {table} AS {transform_sql(up, destination)}")
                    conn.commit()
            cursor = conn.execute(transform_sql(node, destination))
            columns = [d[0] for d in cursor.description]
            fetched = cursor.fetchmany(call.limit + 1)
        except sqlite3.Error as exc:
            raise CallError(409, f"the transform does not run over the previewed rows: {exc}") from None
        finally:
            conn.close()
            destination.engine.dispose()
    kept = fetched[:call.limit]
    types = {}
    for index, column in enumerate(columns):
        found = next((type_of(r[index]) for r in kept if r[index] is not None), None)
        types[column] = found.value if found is not None else "text"
    rows_out = [[json_value(v) for v in r] for r in kept]
    return {"columns": types, "rows": _masked(columns, rows_out, sensitive), "truncated": len(fetched) > call.limit}


def send_test_alert(call: AlertTestCall, resolver: Resolver) -> dict[str, Any]:
    """A clearly marked test message through one alert channel, by the real delivery code (the sensors'), with
    the channel's secrets from this process's environment. A failed delivery is the answer, not an error."""
    from aggregator.alerts.deliver import channel_test_message, send_test
    from aggregator.pipelines.alert_setup import alert_setup_partial

    specs, _ = _specs()
    config = alert_setup_partial(specs)[0].config
    if call.channel not in config.channels:
        if _errors and not config.channels:
            # The file declaring the channels may be the one that does not load.
            raise CallError(409, f"alert channel {call.channel!r} is not loaded: {_errors[0]}")
        raise CallError(404, f"no alert channel {call.channel!r}; declared under alerts.channels: "
                        f"{', '.join(sorted(config.channels)) or 'none'}")
    try:
        # Resolved through the call's resolver first: its values are then redacted from the answer and the
        # log, and a variable that is not set here is named before anything is sent.
        resolver.resolve(config.channels[call.channel].model_dump(exclude_none=True),
                         f"alert channel {call.channel!r}")
    except SecretReferenceError as exc:
        message = channel_test_message(call.channel, config.ui_url, call.requested_by)
        return {"channel": call.channel, "delivered": False, "attempts": 0, "error": first_line(exc),
                "title": message.title, "subject": message.subject}
    message, result = send_test(call.channel, config, call.requested_by)
    return {"channel": call.channel, "delivered": result.ok, "attempts": result.attempts, "error": result.error,
            "title": message.title, "subject": message.subject}


# name -> (request model, action); the HTTP path is /v1/<name>.
ACTIONS: dict[str, tuple[type[BaseModel], Callable[[Any, Resolver], Any]]] = {
    "check": (ConnectionCall, check),
    "discover": (ConnectionCall, discover),
    "source-schema": (SourceCall, source_schema),
    "preview-source": (SourceCall, preview_source),
    "preview-transform": (TransformCall, preview_transform),
    "send-test-alert": (AlertTestCall, send_test_alert),
}
