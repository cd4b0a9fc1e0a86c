"""The pipeline spec language: pydantic models for the YAML files in AGGREGATOR_PIPELINES."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from connectors.files.config import FileStream

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="Lower-case letters, digits and underscores, starting with a letter."),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvRef(Strict):
    """A value read from an environment variable when the pipeline runs: `{env: NAME}`."""

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")


class FilesConnection(Strict):
    """Local files under a base directory."""

    type: Literal["files"] = "files"
    base_dir: str = Field(description="Directory of the files; relative paths are relative to the spec file.")
    encoding: str = Field("utf-8", description="Default text encoding.")


class SqlConnection(Strict):
    """A SQL database reachable through a SQLAlchemy URL."""

    type: Literal["sql"] = "sql"
    url: str | EnvRef = Field(description="SQLAlchemy URL; put credentials in `{env: NAME}`, never inline.")


Connection = Annotated[FilesConnection | SqlConnection, Field(discriminator="type")]
Stream = Annotated[FileStream, Field(discriminator="type")]


class Schedule(Strict):
    """When the pipeline's assets are materialized."""

    cron: str = Field(description="Cron expression, e.g. '0 6 * * *'.")
    timezone: str = Field("UTC", description="IANA timezone the cron expression is evaluated in.")
    enabled: bool = Field(True, description="Whether the schedule starts running when the platform starts.")

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
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA timezone (e.g. 'UTC', 'Europe/Berlin')") from exc
        return value


class SourceSpec(Strict):
    """A stream read from a connection and landed as a table in the destination."""

    name: Name
    description: str | None = Field(None, description="One line shown in the Dagster UI.")
    connection: str = Field(description="Name of a connection declared under `connections:`.")
    stream: Stream = Field(description="What to read from the connection.")
    table: Name | None = Field(None, description="Destination table; default `<pipeline>_<source>`.")
    write_mode: Literal["append", "replace"] = Field(
        "replace", description="`replace` swaps in a fresh copy atomically; `append` adds rows."
    )
    primary_key: list[str] = Field(default_factory=list, description="Columns that identify a record.")


class TransformSpec(Strict):
    """A table computed by SQL over upstream tables, referenced as `{{ ref('name') }}`."""

    name: Name
    description: str | None = Field(None, description="One line shown in the Dagster UI.")
    sql: str = Field(description="A SELECT statement; `{{ ref('source_or_transform') }}` names an upstream table.")
    table: Name | None = Field(None, description="Destination table; default `<pipeline>_<transform>`.")


class PipelineSpec(Strict):
    """One pipeline: sources and transforms landing in one destination, on one schedule."""

    name: Name
    description: str | None = Field(None, description="What the pipeline is for.")
    owners: list[str] = Field(default_factory=list, description="Emails or `team:name` owners.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form tags on every asset.")
    destination: str = Field("warehouse", description="Connection the tables land in (default: the warehouse).")
    schedule: Schedule | None = Field(None, description="Cron schedule; omit for manual runs only.")
    sources: list[SourceSpec] = Field(default_factory=list, description="Streams to load.")
    transforms: list[TransformSpec] = Field(default_factory=list, description="Tables derived with SQL.")


class SpecFile(Strict):
    """The contents of one YAML file: connections and/or pipelines."""

    connections: dict[Name, Connection] = Field(default_factory=dict, description="Named connector instances.")
    pipelines: list[PipelineSpec] = Field(default_factory=list, description="Pipelines declared in this file.")


# Tags pydantic inserts into error locations for discriminated unions; error messages drop them.
UNION_TAGS = frozenset(
    model.model_fields["type"].default for model in (FilesConnection, SqlConnection, FileStream)
)
