"""Request and response bodies of the management API; the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml as pyyaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from aggregator.pipelines import bounded_yaml
from aggregator.proxy.api.errors import Problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _within_budget(text: str) -> str:
    """A spec document in a request body is checked against the spec budget (bounded_yaml.py) before any
    handler reads it: a "billion laughs" or 50,000-deep document is a 400 naming the limit, from every route
    and for every role. Invalid YAML passes here: validation reports it located, like `aggregator validate`."""
    try:
        bounded_yaml.check(text)
    except bounded_yaml.YamlBudgetError as exc:
        raise ValueError(f"spec document refused: {exc.message}") from None
    except pyyaml.YAMLError:
        pass
    return text


SpecYaml = Annotated[str, AfterValidator(_within_budget)]


class PipelineSummary(BaseModel):
    """A pipeline as listed: where it is declared and the ETag to send with a write."""

    name: str = Field(description="Pipeline name (also its asset group and scope name).")
    file: str = Field(description="Spec file declaring it, relative to the specs directory.")
    etag: str = Field(description="ETag of that file; send it as If-Match to update or delete.")
    version: int = Field(description="Latest version in the API's history (0: never written through the API).")
    in_scope: bool = Field(description="Whether the caller's grant covers this pipeline's data.")


class PipelineDocument(PipelineSummary):
    """One pipeline's spec file as YAML."""

    yaml: str = Field(description="The whole spec file (it may also declare connections or templates).")
    pipelines_in_file: list[str] = Field(description="Every pipeline the file declares.")


class PipelineCreate(Strict):
    """A new pipeline: its name and the YAML of the spec file that declares it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Pipeline name (snake_case).")
    yaml: SpecYaml = Field(description="Spec file contents; must declare pipeline `name`.")


class PipelineUpdate(Strict):
    """The new contents of the spec file declaring a pipeline."""

    yaml: SpecYaml = Field(description="Spec file contents; must still declare the pipeline.")


class WriteResult(BaseModel):
    """An accepted write: the new version and whether the code location picked it up."""

    name: str = Field(description="Pipeline name.")
    version: int = Field(description="Version number of this write in the pipeline's history.")
    etag: str = Field(description="ETag of the file now (empty after a delete).")
    file: str = Field(description="Spec file written, relative to the specs directory.")
    reloaded: bool = Field(description="True when Dagster reloaded the code location without error.")
    reload_problems: list[str] = Field(description="Why the reload failed, when it did.")


class VersionInfo(BaseModel):
    """One entry of a pipeline's history."""

    version: int = Field(description="1 for the first write through the API, then +1 per write.")
    action: Literal["create", "update", "delete", "rollback"] = Field(description="What the write did.")
    username: str = Field(description="Who wrote it.")
    ts: float = Field(description="When (Unix time).")
    file: str = Field(description="Spec file written.")
    diff: str = Field(description="Unified diff against the file as it was before.")
    yaml: str | None = Field(description="File contents after the write (null after a delete).")


class ValidationReport(BaseModel):
    """The result of validating a spec without storing it."""

    ok: bool = Field(description="True when `aggregator validate` would accept the specs with this file.")
    problems: list[Problem] = Field(description="Every problem, as `file:line: field: message`.")


class QueryRequest(Strict):
    """A read-only SQL query over the warehouse tables of the caller's pipelines."""

    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT (WITH … SELECT is fine).")
    format: Literal["json", "csv", "parquet"] = Field(
        "json", description="Result format. CSV and Parquet stream as downloads; whether they were cut at "
        "`row_limit` is in the `x-truncated` header when known up front, else in a last `# truncated:` line "
        "(CSV) or the footer's `aggregator.truncated` metadata (Parquet).")
    row_limit: int = Field(1000, ge=1, le=100_000, description="Rows returned at most; `truncated` says if cut.")


class QueryResult(BaseModel):
    """Rows of a query, JSON form."""

    columns: list[str] = Field(description="Column names, in order.")
    rows: list[list[Any]] = Field(description="Rows as arrays, in column order.")
    truncated: bool = Field(description="True when the query had more rows than `row_limit`.")
    sql: str = Field(description="The statement that ran (regenerated from the checked parse tree).")


class ExportQuery(Strict):
    """Options of an export."""

    format: Literal["csv", "parquet"] = Field("csv", description="File format.")
    limit: int | None = Field(None, ge=1, description="Rows exported at most (default: all).")


class TableInfo(BaseModel):
    """A warehouse table the caller may query or export."""

    pipeline: str = Field(description="Pipeline the table belongs to.")
    asset: str = Field(description="Source or transform name inside the pipeline.")
    table: str = Field(description="Table name in the warehouse.")


class ConnectorTypeInfo(BaseModel):
    """A registered connector type and the JSON Schema of its `config:` (for rendering forms)."""

    name: str = Field(description="The `type:` of a connection.")
    stream_type: str = Field(description="The `stream.type` of sources reading such a connection.")
    summary: str = Field(description="What it reads.")
    config_schema: dict[str, Any] = Field(description="JSON Schema of the connection's `config:`.")
    stream_schema: dict[str, Any] = Field(description="JSON Schema of a source's `stream:`.")


class ConnectionInfo(BaseModel):
    """A connection declared in the specs (secrets only ever as `{env: NAME}` references)."""

    name: str = Field(description="Connection name.")
    type: str = Field(description="Connector type.")
    file: str = Field(description="Spec file declaring it.")
    used_by: list[str] = Field(description="Pipelines reading from or writing to it.")


class CheckResult(BaseModel):
    """Whether a connection reaches its system."""

    ok: bool = Field(description="True when the connector's check succeeded.")
    message: str = Field(description="What was reached, or what failed (no secret values).")


class StreamInfoModel(BaseModel):
    """A stream a connection offers, with its columns and portable types."""

    name: str = Field(description="Stream (table, file, endpoint) name.")
    columns: dict[str, str] = Field(description="Column -> portable type.")
    detail: str = Field("", description="Connector-specific detail.")


class DiscoverRequest(Strict):
    """Optional stream to discover (a connector that cannot list everything needs one)."""

    stream: dict[str, Any] | None = Field(None, description="A `stream:` block as in a source spec.")


class ChartChoice(Strict):
    """How a result is drawn: a line or bar chart of value columns against one column, or a table."""

    kind: Literal["line", "bar", "table"] = Field(description="Chart kind; `table` shows the rows.")
    x: str | None = Field(None, max_length=200, description="Column on the horizontal axis (line, bar).")
    ys: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=10, description="Numeric columns drawn (line, bar).")


SavedName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$",
                                 description="Name, unique among the caller's own; no leading or trailing space.")]


class SavedQueryIn(Strict):
    """A query to keep: its text, row limit and chart. Saved only if it passes the query guard now."""

    name: SavedName
    sql: str = Field(min_length=1, max_length=100_000, description="One SELECT, as `POST /api/query` takes it.")
    row_limit: int = Field(1000, ge=1, le=100_000, description="Rows fetched when it runs.")
    chart: ChartChoice | None = Field(None, description="Chart shown with the result; null: chosen automatically.")


class SavedQuery(SavedQueryIn):
    """A saved query of the caller. Running it is `POST /api/query` with its `sql`, under the grant of whoever
    runs it then, never the one it was saved with."""

    id: str = Field(description="Identifier, used in the URL and in dashboard items.")
    created_at: float = Field(description="When it was saved (Unix time).")
    updated_at: float = Field(description="When it was last changed (Unix time).")


class DashboardItem(Strict):
    """One tile of a dashboard: a saved query of the same user and how to draw it."""

    query_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Id of one of the caller's saved queries.")
    chart: ChartChoice | None = Field(None, description="Chart of this tile; null: the saved query's own.")


class DashboardIn(Strict):
    """A named list of saved queries with their chart choices, shown as a grid."""

    name: SavedName
    items: list[DashboardItem] = Field(default_factory=list, max_length=24, description="Tiles, in order.")


class Dashboard(DashboardIn):
    """A dashboard of the caller."""

    id: str = Field(description="Identifier, used in the URL.")
    created_at: float = Field(description="When it was created (Unix time).")
    updated_at: float = Field(description="When it was last changed (Unix time).")
