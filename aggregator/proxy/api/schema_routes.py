"""A pipeline's sources, looked at without running the pipeline.

`GET .../sources/{source}/schema`: discovered source vs destination table vs the last materialization's
column schema (added, removed, type-changed columns), the base of a schema-mapping UI.
`POST .../sources/{source}/preview`: read the stream's first rows (nothing is written, no state is kept).
Discovery and previews run in the worker (worker_client.py); the proxy only reads the specs and the warehouse.
"""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import BaseModel, Field

from aggregator.destinations.schema import column_name, fits
from aggregator.pipelines.column_mapping import ColumnMapping
from aggregator.pipelines.graph import build_graph
from aggregator.pipelines.load import SpecErrors, load_specs
from aggregator.pipelines.spec import SourceSpec
from aggregator.proxy.api.access import require
from aggregator.proxy.api.catalog import WAREHOUSE
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Strict
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.api.worker_client import WORKER_STATUSES
from aggregator.proxy.policy.rbac import Role
from connectors.batches import ColumnType
from connectors.sql.engines import engine_for
from connectors.sql.types import portable_type

LAST_SCHEMA = """query AggregatorApiLastSchema($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  __typename ... on AssetNode { assetMaterializations(limit: 1) { timestamp metadataEntries { label
    ... on TableSchemaMetadataEntry { schema { columns { name type } } } } } } } }"""


class PreviewRequest(Strict):
    """How many rows to read."""

    limit: int = Field(20, ge=1, le=1000, description="Rows read at most; reading stops there.")


class Preview(BaseModel):
    """The first rows of a source stream and the types inferred for them."""

    columns: dict[str, str] = Field(description="Column -> portable type, as a run would infer them.")
    rows: list[list[Any]] = Field(description="Rows in column order (JSON-safe values).")
    truncated: bool = Field(description="True when the stream had more rows than `limit`.")


class SchemaDiff(BaseModel):
    """How `new` differs from `old`."""

    added: list[str] = Field(description="Columns in new, not in old.")
    removed: list[str] = Field(description="Columns in old, not in new.")
    type_changed: dict[str, list[str]] = Field(description="Column -> [old type, new type].")


class SchemaComparison(BaseModel):
    """Three views of a source's columns (portable types) and how they differ."""

    source: dict[str, str] | None = Field(
        description="Discovered from the connection now, named as the table names them: the spec's renames and "
        "exclusions applied (null if discovery failed).")
    source_columns: dict[str, str] | None = Field(
        None, description="Discovered, as the source names them (the keys of the spec's `columns:`).")
    mapping: dict[str, str | None] | None = Field(
        None, description="Each discovered source column -> the table column it lands in (null: excluded).")
    source_error: str | None = Field(None, description="Why discovery failed, when it did.")
    destination: dict[str, str] | None = Field(description="The destination table's columns (null: no table yet).")
    last_materialization: dict[str, str] | None = Field(
        description="`dagster/column_schema` of the latest materialization (null: never materialized).")
    source_vs_destination: SchemaDiff | None = Field(description="What the next run would change in the table.")
    destination_vs_last_materialization: SchemaDiff | None = Field(
        description="What changed in the table since it was last materialized (e.g. by hand).")


def diff(old: dict[str, str] | None, new: dict[str, str] | None) -> SchemaDiff | None:
    if old is None or new is None:
        return None
    return SchemaDiff(added=[c for c in new if c not in old], removed=[c for c in old if c not in new],
                      type_changed={c: [old[c], new[c]] for c in new if c in old and old[c] != new[c]})


def load_diff(table: dict[str, str] | None, source: dict[str, str] | None) -> SchemaDiff | None:
    """What a load of `source` would change in `table`: a source type whose values the column already holds
    (integer values in a float column, dates in a timestamp column, anything in a text column) changes
    nothing, so it is no drift (`schema.fits`, the rule the load itself applies)."""
    found = diff(table, source)
    if found is None or table is None or source is None:
        return found
    found.type_changed = {c: types for c, types in found.type_changed.items()
                          if not _fits(source[c], table[c])}
    return found


def _fits(value_type: str, column_type: str) -> bool:
    try:
        return fits(ColumnType(value_type), ColumnType(column_type))
    except ValueError:  # not a portable type name: report it
        return False


def portable_name(sql_type: str) -> str:
    """A portable type for a type name as written in metadata (`INTEGER`, `DOUBLE PRECISION`, ...)."""
    name = sql_type.lower()
    for words, portable in ((("bool",), "boolean"), (("int",), "integer"),
                            (("float", "real", "double", "numeric", "decimal"), "float"),
                            (("timestamp", "datetime"), "timestamp"), (("date",), "date")):
        if any(w in name for w in words):
            return portable
    return "text"


def routes(api: ApiState) -> list[Route]:
    def _source(pipeline: str, source: str) -> tuple[str, str, ColumnMapping]:
        """The source's table, destination and column mapping, from the specs (no connection is built here)."""
        try:
            specs = load_specs(api.platform.pipelines_dir, api.specs.texts())
            graph = build_graph(specs)
        except SpecErrors as exc:
            raise ApiError(503, f"the pipeline specs do not load ({len(exc.errors)} problem(s))") from None
        node = graph.nodes.get((pipeline, source))
        if node is None or not isinstance(node.spec, SourceSpec):
            raise ApiError(404, f"no source {source!r} in pipeline {pipeline!r}")
        return node.table, node.pipeline.destination, node.spec.mapping

    def _destination(table: str) -> dict[str, str] | None:
        # The process's shared reader engine for the warehouse (connectors/sql/engines.py), not one per request.
        with engine_for(api.platform.warehouse_url).connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(table):
                return None
            return {c["name"]: portable_type(c["type"]).value for c in inspector.get_columns(table)}

    async def _last(pipeline: str, source: str) -> dict[str, str] | None:
        try:
            body = (await api.client.post(api.graphql_url, json={"query": LAST_SCHEMA, "variables": {
                "key": {"path": [pipeline, source]}}})).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(502, f"Dagster did not answer the materialization look-up: {type(exc).__name__}") from None
        node = (body.get("data") or {}).get("assetNodeOrError") or {}
        for event in node.get("assetMaterializations") or []:
            for entry in event.get("metadataEntries") or []:
                if entry.get("label") == "dagster/column_schema" and entry.get("schema"):
                    return {c["name"]: portable_name(c["type"] or "") for c in entry["schema"]["columns"]}
        return None

    async def compare_source_schema(req: ApiRequest) -> SchemaComparison:
        """Discovered source columns vs the destination table vs the last materialization."""
        pipeline, source = req.params["name"], req.params["source"]
        require(req.principal, Role.viewer, "compare_source_schema", [pipeline])
        table, destination, mapping = await api.services.run_io(_source, pipeline, source)
        discovered: dict[str, str] | None = None
        source_columns: dict[str, str] | None = None
        try:
            answer = await api.worker.call("source-schema", {"pipeline": pipeline, "source": source})
            discovered, error = answer["columns"], answer["error"]
            source_columns = answer.get("source_columns")
        except ApiError as exc:
            if exc.status == 404:
                raise
            error = exc.detail  # no worker, or it failed: the other two views still answer
        dest = await api.services.run_io(_destination, table) if destination == WAREHOUSE else None
        last = await _last(pipeline, source)
        dropped = mapping.dropped(source_columns or ())
        mapped = None if source_columns is None else {
            c: None if c in dropped else column_name(mapping.renames.get(c, c)) for c in source_columns}
        return SchemaComparison(source=discovered, source_error=error, source_columns=source_columns, mapping=mapped,
                                destination=dest, last_materialization=last,
                                source_vs_destination=load_diff(dest, discovered),
                                destination_vs_last_materialization=diff(last, dest))

    async def preview_source(req: ApiRequest) -> Preview:
        """Read a source stream's first rows in the worker, `sensitive_columns` masked; nothing is written."""
        pipeline, source = req.params["name"], req.params["source"]
        body = req.body_as(PreviewRequest)
        require(req.principal, Role.viewer, "preview_source", [pipeline])
        answer = await api.worker.call("preview-source", {"pipeline": pipeline, "source": source,
                                                           "limit": body.limit})
        return Preview.model_validate(answer)

    return [Route("GET", "/api/pipelines/{name}/sources/{source}/schema", compare_source_schema,
                  "Compare a source's schemas", response=SchemaComparison, statuses=(502, 503)),
            Route("POST", "/api/pipelines/{name}/sources/{source}/preview", preview_source,
                  "Preview a source's first rows", body=PreviewRequest, response=Preview,
                  statuses=(415, *WORKER_STATUSES),
                  reads=True)]
