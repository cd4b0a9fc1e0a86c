"""Deployment settings read from the environment, validated once."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

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

    specs_db_url: str | None = Field(
        None,
        description="AGGREGATOR_SPECS_DB_URL: SQLAlchemy URL of the spec store (the platform database; default: "
        "AGGREGATOR_PROXY_DB_URL, else the SQLite file AGGREGATOR_HOME/proxy.db). Code servers, run workers and "
        "the worker only read it: in production give them a role that may only SELECT the spec store's tables.",
    )

    @property
    def spec_store_url(self) -> str:
        return self.specs_db_url or f"sqlite:///{self.home / 'proxy.db'}"

    @property
    def uploads_root(self) -> Path:
        return (self.uploads_dir or self.home / "uploads").resolve()

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
    return Settings(home=home, pipelines_dir=pipelines_dir, warehouse_url=warehouse_url, uploads_dir=uploads_dir,
                    specs_db_url=specs_db_url)
