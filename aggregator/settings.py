"""Deployment settings read from the environment, validated once."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aggregator.uploads_s3 import S3Root, parse_uploads_url, s3_root

PACKAGE_DIR = Path(__file__).resolve().parent
EXAMPLE_PIPELINES_DIR = PACKAGE_DIR / "examples" / "pipelines"


class Settings(BaseModel):
    """Where the platform keeps its state and finds its pipelines."""

    model_config = ConfigDict(frozen=True)

    home: Path = Field(
        description="AGGREGATOR_HOME: every file written at run time lives under it "
        "(Dagster instance, warehouse, logs). DAGSTER_HOME defaults to it.",
    )
    pipelines_dir: Path = Field(
        description="AGGREGATOR_PIPELINES: directory of YAML pipeline specs (default: the bundled samples).",
    )
    warehouse_url: str = Field(
        description="AGGREGATOR_WAREHOUSE_URL: SQLAlchemy URL of the default destination "
        "(default: a SQLite file under AGGREGATOR_HOME).",
    )

    uploads_dir: Path | None = Field(
        None,
        description="AGGREGATOR_UPLOADS_DIR: the uploads root (default: AGGREGATOR_HOME/uploads). File sensors "
        "watch directories under it only, and uploads are staged in its hidden `.staging` directory.",
    )

    uploads_url: str | None = Field(
        None,
        description="AGGREGATOR_UPLOADS_URL: `s3://bucket/prefix` to stage and deliver uploads in S3-compatible object "
        "storage that every proxy replica and every file sensor shares (default: the local uploads root). Sensor "
        "directories are still written relative to the uploads root; with this set, they name key prefixes.",
    )
    uploads_s3_endpoint_url: str | None = Field(
        None,
        description="AGGREGATOR_UPLOADS_S3_ENDPOINT_URL: endpoint of an S3-compatible server (MinIO, Ceph); unset "
        "for AWS. Credentials come from the AWS environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a role).",
    )
    uploads_s3_region: str | None = Field(
        None, description="AGGREGATOR_UPLOADS_S3_REGION: region of the uploads bucket (default us-east-1).")

    specs_db_url: str | None = Field(
        None,
        description="AGGREGATOR_SPECS_DB_URL: SQLAlchemy URL of the spec store (the platform database; default: "
        "AGGREGATOR_PROXY_DB_URL, else the SQLite file AGGREGATOR_HOME/proxy.db). Code servers, run workers and "
        "the worker only read it: in production give them a role that may only SELECT the spec store's tables.",
    )

    @field_validator("uploads_url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value:
            parse_uploads_url(value)
        return value or None

    @property
    def spec_store_url(self) -> str:
        return self.specs_db_url or f"sqlite:///{self.home / 'proxy.db'}"

    @property
    def uploads_root(self) -> Path:
        return (self.uploads_dir or self.home / "uploads").resolve()

    @property
    def uploads_s3(self) -> S3Root | None:
        """The object-storage uploads root, or None when uploads stay on the local directory."""
        return s3_root(self.uploads_url, self.uploads_root, self.uploads_s3_endpoint_url, self.uploads_s3_region)

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("AGGREGATOR_HOME") or ".aggregator").expanduser().resolve()
    pipelines_dir = Path(env.get("AGGREGATOR_PIPELINES") or EXAMPLE_PIPELINES_DIR).expanduser().resolve()
    warehouse_url = env.get("AGGREGATOR_WAREHOUSE_URL") or f"sqlite:///{home / 'warehouse.db'}"
    uploads_dir = Path(env["AGGREGATOR_UPLOADS_DIR"]).expanduser().resolve() if env.get("AGGREGATOR_UPLOADS_DIR") else None
    specs_db_url = env.get("AGGREGATOR_SPECS_DB_URL") or env.get("AGGREGATOR_PROXY_DB_URL") or None
    if env.get("AGGREGATOR_UPLOADS_URL"):
        parse_uploads_url(env["AGGREGATOR_UPLOADS_URL"])  # before pydantic, whose error would echo the value
    return Settings(home=home, pipelines_dir=pipelines_dir, warehouse_url=warehouse_url, uploads_dir=uploads_dir,
                    specs_db_url=specs_db_url, uploads_url=env.get("AGGREGATOR_UPLOADS_URL") or None,
                    uploads_s3_endpoint_url=env.get("AGGREGATOR_UPLOADS_S3_ENDPOINT_URL") or None,
                    uploads_s3_region=env.get("AGGREGATOR_UPLOADS_S3_REGION") or None)
