"""What the API's handlers share: proxy services, platform settings, spec store, warehouse, limits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from pydantic import BaseModel, ConfigDict, Field

from aggregator.proxy.api.catalog import Catalog, read_catalog
from aggregator.proxy.api.spec_store import SpecStore
from aggregator.proxy.api.warehouse import Warehouse
from aggregator.proxy.api.worker_client import WorkerClient
from aggregator.proxy.context import Services
from aggregator.settings import Settings


class ApiLimits(BaseModel):
    """Limits of the API's data endpoints."""

    model_config = ConfigDict(frozen=True)

    query_timeout_s: float = Field(
        10.0, gt=0, description="AGGREGATOR_API_QUERY_TIMEOUT_S: a query running longer is cancelled.")
    reload_after_write: bool = Field(
        True, description="Reload the Dagster code location after each accepted spec write.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiLimits:
        env = os.environ if environ is None else environ
        values = {}
        if env.get("AGGREGATOR_API_QUERY_TIMEOUT_S"):
            values["query_timeout_s"] = env["AGGREGATOR_API_QUERY_TIMEOUT_S"]
        return cls.model_validate(values)


@dataclass
class ApiState:
    services: Services
    client: httpx.AsyncClient
    platform: Settings
    specs: SpecStore
    warehouse: Warehouse
    limits: ApiLimits
    # Checks, discovery and previews: the worker does them, with the pipelines' environment (never here).
    worker: WorkerClient = field(default_factory=WorkerClient.from_env)

    @property
    def graphql_url(self) -> str:
        settings = self.services.settings
        return f"{settings.upstream}{settings.path_prefix}/graphql"

    async def catalog(self) -> Catalog:
        result: Catalog = await self.services.run_io(read_catalog, self.platform.pipelines_dir)
        return result
