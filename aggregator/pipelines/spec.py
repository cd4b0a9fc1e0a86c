"""The pipeline spec language: pydantic models for the YAML files in AGGREGATOR_PIPELINES."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from aggregator.destinations.schema import MissingColumns, SchemaPolicy, WriteMode
from aggregator.pipelines.alerts_spec import AlertsConfig, Duration, PipelineAlerts
from aggregator.pipelines.checks_spec import Check
from aggregator.pipelines.column_mapping import ColumnMapping, check_mapping, raise_located
from aggregator.pipelines.connections import Connection, EnvRef
from aggregator.pipelines.executors import DEFAULT_EXECUTOR, ExecutorName
from aggregator.pipelines.steps import Step
from aggregator.pipelines.streams import Stream
from connectors.batches import ColumnType
from connectors.records import TypeHints
from connectors.registry import reading
from connectors.streams.base import MessageStream

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="Lower-case letters, digits and underscores, starting with a letter."),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Schedule(Strict):
    """When the pipeline's assets are materialized."""

    cron: str = Field(description="Cron expression, e.g. '0 6 * * *'.")
    timezone: str = Field("UTC", description="IANA timezone the cron expression is evaluated in.")
    enabled: bool = Field(True, description="Whether the schedule starts running when the platform starts.")
    catch_up: Literal["latest", "skip"] = Field(
        "latest",
        description="Ticks missed while the daemon or code server was down (docs/operations.md): `latest` runs "
        "the newest missed tick once when the platform is back; `skip` runs none of them (the next regular "
        "tick runs). For a partitioned pipeline the newest missed tick loads the latest complete window; missed "
        "windows are backfilled from the UI.",
    )
    late_after_s: int = Field(
        300, gt=0,
        description="With `catch_up: skip`: a tick evaluated this many seconds after its scheduled time counts as "
        "missed and is skipped.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from dagster._utils.schedules import is_valid_cron_string

        if not is_valid_cron_string(value):
            raise ValueError(f"{value!r} is not a valid cron expression (five fields, e.g. '0 6 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return valid_timezone(value)


def valid_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Berlin')") from exc
    return value


class FileSensor(Strict):
    """Run the pipeline when new or changed files appear in a directory."""

    directory: str = Field(description="Directory to watch, under the uploads root (AGGREGATOR_UPLOADS_DIR, default "
                           "AGGREGATOR_HOME/uploads); relative paths are relative to that root.")
    pattern: str = Field("*", description="Glob of the files that count, e.g. '*.csv'.")
    interval_seconds: int = Field(30, ge=5, description="How often the sensor looks.")
    enabled: bool = Field(True, description="Whether the sensor starts running when the platform starts.")


class MessageSensor(Strict):
    """Run the pipeline when messages wait in one of its message-stream sources: batched (a run waits for
    `min_messages` or `max_wait_seconds`) and back-pressured (never while a run of the pipeline is queued or in
    progress; each run loads at most the stream's `max_messages`)."""

    source: Name = Field(description="The pipeline's source (a message stream) whose broker is watched.")
    interval_seconds: int = Field(10, ge=1, description="How often the sensor asks the broker.")
    min_messages: int = Field(1, ge=1, description="Start a run once this many messages wait…")
    max_wait_seconds: int = Field(
        60, ge=0, description="…or once the first waiting message was seen this long ago, however few wait."
    )
    enabled: bool = Field(True, description="Whether the sensor starts running when the platform starts.")


class Partitions(Strict):
    """Time partitions: each run loads one window, so backfills load exactly the chosen windows."""

    grain: Literal["hourly", "daily"] = Field(description="Window size.")
    start: dt.datetime = Field(description="First window, e.g. 2026-09-01 (or 2026-09-01T00:00 for hourly).")
    timezone: str = Field("UTC", description="IANA timezone of the window boundaries.")
    end_offset: int = Field(0, ge=0, description="Include this many windows past the last complete one.")

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return valid_timezone(value)


class ColumnHint(Strict):
    """What the spec says about one source column: its type (wins over inference), or the table column it lands
    in (`rename`), or that it never reaches the table (`exclude`)."""

    type: Literal["integer", "float", "boolean", "text", "timestamp", "date"] | None = Field(
        None, description="The column's type; values are converted to it and a value that cannot be fails the load."
    )
    rename: Name | None = Field(
        None,
        description="The table column this source column lands in. `primary_key`, checks and "
        "`sensitive_columns` name the table column (the new name); an incremental cursor still reads the source's.",
    )
    exclude: bool = Field(
        False, description="`true`: the column is dropped from every batch before the load; the table, previews "
        "and metadata never see it.",
    )

    @model_validator(mode="after")
    def _says_something(self) -> ColumnHint:
        if self.exclude and (self.type is not None or self.rename is not None):
            raise ValueError("an excluded column is never loaded: `exclude: true` goes without `type` or `rename`")
        if not self.exclude and self.type is None and self.rename is None:
            raise ValueError("say what to do with the column: `type`, `rename` or `exclude: true`")
        return self


class SchemaRules(Strict):
    """How a load meets a source whose columns changed: new columns and type changes, and columns that stop
    arriving (removed or renamed at the source; a rename is reported as a removal plus a new column)."""

    changes: SchemaPolicy = Field(
        "evolve",
        description="New columns and type changes: `evolve` adds columns and widens integer->float, "
        "date->timestamp, failing on other changes; `freeze` fails the load; `discard` drops new columns and "
        "values of a type that does not fit.",
    )
    missing_columns: MissingColumns = Field(
        "keep",
        description="A column of the table that the source no longer sends: `keep` (default) keeps it and its "
        "values (append/merge: NULL in new rows; replace: each row keeps its old value by `primary_key`, and "
        "without a primary key the load fails rather than erase the column); `fail` fails the load; `accept` "
        "lets it go (append/merge: NULL in new rows; replace: the column is dropped).",
    )


class SourceSpec(Strict):
    """A stream read from a connection and landed as a table in the destination."""

    name: Name
    description: str | None = Field(None, description="One line shown in the Dagster UI.")
    connection: str = Field(description="Name of a connection declared under `connections:`.")
    stream: Stream = Field(description="What to read from the connection; `type` must match the connection's.")
    table: Name | None = Field(None, description="Destination table; default `<pipeline>_<source>`.")
    write_mode: WriteMode = Field(
        "replace",
        description="`replace` swaps in a fresh copy atomically; `append` adds rows; "
        "`merge` upserts on `primary_key`.",
    )
    primary_key: list[str] = Field(default_factory=list, description="Columns that identify a record.")
    schema_policy: SchemaPolicy | SchemaRules = Field(
        "evolve",
        description="New columns and type changes (between or within batches): `evolve` adds columns and "
        "widens integer->float, date->timestamp, failing on other changes; `freeze` fails the load; "
        "`discard` drops new columns and values of a type that does not fit. The long form "
        "`{changes: evolve, missing_columns: keep}` also says what happens to columns that stop arriving "
        "(`keep`, `fail` or `accept`).",
    )
    columns: dict[str, ColumnHint] = Field(
        default_factory=dict,
        description="By source column name: declared types, e.g. `{updated_at: {type: timestamp}}` (they win over "
        "inference), renames `{CustName: {rename: customer_name}}` and exclusions `{ssn: {exclude: true}}`. "
        "Everything else in the source names table columns.",
    )
    detect_timestamps: bool = Field(
        True, description="Type ISO-8601 date and timestamp strings as dates/timestamps (false: keep text)."
    )
    checks: list[Check] = Field(default_factory=list, description="Data quality checks on the loaded table.")
    freshness: Duration | None = Field(
        default=None, description="Alert when the table was last loaded longer ago than this, e.g. '26h' (rule `freshness`)."
    )
    preview_rows: int = Field(
        0, ge=0, le=100,
        description="Rows of the table shown in each materialization's metadata (0: off, the default: sources "
        "may hold personal data).",
    )
    sensitive_columns: list[str] = Field(
        default_factory=list, description="Columns masked in previews (metadata and `aggregator tables preview`)."
    )

    @model_validator(mode="after")
    def _merge_needs_key(self) -> SourceSpec:
        if self.write_mode == "merge" and not self.primary_key:
            raise ValueError("write_mode 'merge' needs `primary_key` (the columns to upsert on)")
        if self.write_mode == "replace" and reading(self.stream).cursor(self.stream):
            raise ValueError(
                "an incremental cursor with write_mode 'replace' would replace the table with only the new rows; "
                "use 'merge' (with primary_key) or 'append'"
            )
        return self

    @model_validator(mode="after")
    def _mapping_consistent(self) -> SourceSpec:
        mapping = self.mapping
        references: list[tuple[tuple[str | int, ...], str]] = [(("primary_key", i), c) for i, c in enumerate(self.primary_key)]
        references += [(("sensitive_columns", i), c) for i, c in enumerate(self.sensitive_columns)]
        for i, check in enumerate(self.checks):
            if isinstance(getattr(check, "column", None), str):
                references.append((("checks", i, "column"), check.column))  # type: ignore[union-attr]
            for j, column in enumerate(getattr(check, "columns", None) or []):
                references.append((("checks", i, "columns", j), column))
        errors = check_mapping(self.columns, mapping.renames, mapping.excluded, references,
                               reading(self.stream).cursor_column(self.stream))
        raise_located("SourceSpec", errors)
        return self

    @property
    def mapping(self) -> ColumnMapping:
        """The spec's renames and exclusions, applied to every batch before the load."""
        return ColumnMapping(
            renames={c: h.rename for c, h in self.columns.items() if h.rename is not None and h.rename != c},
            excluded=frozenset(c for c, h in self.columns.items() if h.exclude),
        )

    @property
    def schema_rules(self) -> SchemaRules:
        """`schema_policy` in its long form: a bare policy name means `{changes: <name>}`."""
        policy = self.schema_policy
        return policy if isinstance(policy, SchemaRules) else SchemaRules(changes=policy)

    def type_hints(self) -> TypeHints:
        """The declared types and detection switch, as the connectors take them."""
        return TypeHints(
            columns={name: ColumnType(hint.type) for name, hint in self.columns.items() if hint.type is not None},
            detect_timestamps=self.detect_timestamps,
        )

    @property
    def incremental(self) -> bool:
        """Whether loads keep state between runs (a cursor, or state the connector tracks), never for replace."""
        return reading(self.stream).incremental(self.stream, self.write_mode)


class TransformSpec(Strict):
    """A table computed from upstream tables: with `sql`, or with `from` and declarative `steps`."""

    name: Name
    description: str | None = Field(None, description="One line shown in the Dagster UI.")
    sql: str | None = Field(
        None, description="A SELECT statement; `{{ ref('name') }}` (or `pipeline.name`) names an upstream table."
    )
    from_: str | None = Field(
        None, alias="from", description="Upstream table the steps start from (a source or transform name)."
    )
    steps: list[Step] = Field(default_factory=list, description="Declarative steps applied in order.")
    table: Name | None = Field(None, description="Destination table; default `<pipeline>_<transform>`.")
    checks: list[Check] = Field(default_factory=list, description="Data quality checks on the built table.")
    freshness: Duration | None = Field(
        default=None, description="Alert when the table was last built longer ago than this, e.g. '26h' (rule `freshness`)."
    )
    preview_rows: int = Field(
        0, ge=0, le=100, description="Rows of the table shown in each materialization's metadata (0: off)."
    )
    sensitive_columns: list[str] = Field(
        default_factory=list, description="Columns masked in previews (metadata and `aggregator tables preview`)."
    )

    @model_validator(mode="after")
    def _one_form(self) -> TransformSpec:
        if (self.sql is None) == (self.from_ is None):
            raise ValueError("a transform has either `sql:` or `from:` (with `steps:`), not both and not neither")
        if self.sql is not None and self.steps:
            raise ValueError("`steps:` apply to `from:`; with `sql:` write the whole SELECT")
        return self

    @property
    def refs(self) -> list[str]:
        """Upstream names this transform reads, in order."""
        from aggregator.pipelines.refs import refs_in
        from aggregator.pipelines.steps import JoinStep

        if self.sql is not None:
            return refs_in(self.sql)
        names = [self.from_ or ""]
        names += [s.join.ref for s in self.steps if isinstance(s, JoinStep) and s.join.ref not in names]
        return names


class PipelineSpec(Strict):
    """One pipeline: sources and transforms landing in one destination."""

    name: Name
    description: str | None = Field(None, description="What the pipeline is for.")
    owners: list[str] = Field(default_factory=list, description="Emails or `team:name` owners.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form tags on every asset.")
    destination: str = Field("warehouse", description="Connection the tables land in (default: the warehouse).")
    schedule: Schedule | None = Field(None, description="Cron schedule; omit for manual runs only.")
    sensor: FileSensor | None = Field(None, description="Run when new files appear in a directory.")
    message_sensor: MessageSensor | None = Field(
        None, description="Run when messages wait in a message-stream source (docs/connectors/streams.md)."
    )
    automation: Literal["none", "eager"] = Field(
        "none",
        description="`eager`: transforms rebuild on their own when an upstream table is updated "
        "(Dagster declarative automation).",
    )
    partitions: Partitions | None = Field(None, description="Time partitions for every asset of the pipeline.")
    executor: ExecutorName = Field(
        DEFAULT_EXECUTOR,
        description="How the pipeline's job runs its steps: `in_process` (one process, least overhead), "
        "`multiprocess` (a process per step: isolation and parallel steps) or `k8s` (a pod per step; needs "
        "the Kubernetes run launcher).",
    )
    overlapping_runs: bool = Field(
        False,
        description="`false` (default): the pipeline's assets are in the Dagster concurrency pool "
        "`pipeline/<name>`, which the shipped instances limit to one run at a time (`concurrency.pools` in "
        "dagster.yaml; raise one pipeline's limit with `dagster instance concurrency set pipeline/<name> N` or "
        "the UI's Concurrency page). `true`: no pool, runs may overlap (incremental loads stay exact: the cursor "
        "is read under each stream's lock).",
    )
    sources: list[SourceSpec] = Field(default_factory=list, description="Streams to load.")
    transforms: list[TransformSpec] = Field(default_factory=list, description="Tables derived from others.")
    alerts: PipelineAlerts | None = Field(default=None, description="This pipeline's alert rules (docs/operations.md).")

    @model_validator(mode="after")
    def _unique_names(self) -> PipelineSpec:
        names = [s.name for s in self.sources] + [t.name for t in self.transforms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source and transform names must be unique in a pipeline; repeated: {', '.join(dupes)}")
        if self.partitions and self.sensor:
            raise ValueError("a partitioned pipeline cannot have a file sensor: a new file belongs to no window")
        streamed = [s.name for s in self.sources if isinstance(s.stream, MessageStream)]
        if self.partitions and streamed:
            raise ValueError(
                f"source {streamed[0]!r}: a message stream is read from its committed position, not by time "
                "window; load it in a pipeline without `partitions:`"
            )
        if self.message_sensor and self.message_sensor.source not in streamed:
            raise ValueError(
                f"message_sensor.source {self.message_sensor.source!r} must name a source of this pipeline that "
                f"reads a message stream; those are: {', '.join(streamed) or 'none'}"
            )
        if self.partitions:
            for source in self.sources:
                if source.write_mode == "replace":
                    raise ValueError(
                        f"source {source.name!r}: a partitioned pipeline loads one window per run, so "
                        "write_mode must be 'merge' (recommended) or 'append', not 'replace'"
                    )
        return self


def pipeline_pool(name: str) -> str:
    """The Dagster concurrency pool of a pipeline's assets: one run per pipeline at a time by default."""
    return f"pipeline/{name}"


PARAM_RE = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


class Template(Strict):
    """A pipeline with `${param}` placeholders, instantiated under `pipelines:` with `use:`."""

    params: list[Name] = Field(default_factory=list, description="Parameter names used as `${name}`.")
    pipeline: dict[str, Any] = Field(description="The pipeline, as it would be written under `pipelines:`.")


class TemplateUse(Strict):
    """An instance of a template: `{use: template_name, with: {param: value}}`."""

    use: str = Field(description="Template name.")
    with_: dict[str, str | int | float | bool] = Field(
        default_factory=dict, alias="with", description="Parameter values."
    )


class SpecFile(Strict):
    """The contents of one YAML file: connections, templates and/or pipelines."""

    connections: dict[Name, Connection] = Field(default_factory=dict, description="Named connector instances.")
    templates: dict[Name, Template] = Field(default_factory=dict, description="Reusable pipeline templates.")
    pipelines: list[PipelineSpec] = Field(default_factory=list, description="Pipelines declared in this file.")
    alerts: AlertsConfig | None = Field(
        default=None, description="Global alert channels and default rules (one file declares them, e.g. alerts.yaml)."
    )


__all__ = [
    "ColumnHint", "Connection", "EnvRef", "FileSensor", "MessageSensor", "Name", "Partitions", "PipelineSpec", "Schedule", "SchemaRules",
    "SourceSpec",
    "SpecFile", "Template", "TemplateUse", "TransformSpec",
]
