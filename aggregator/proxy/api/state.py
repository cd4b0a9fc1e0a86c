"""What the API's handlers share: proxy services, platform settings, spec store, warehouse, limits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from pydantic import BaseModel, ConfigDict, Field

from aggregator.proxy.api.access import in_scope
from aggregator.proxy.api.catalog import WAREHOUSE, AssetTable, Catalog, read_catalog
from aggregator.proxy.api.query_stream import QuerySlots
from aggregator.proxy.api.spec_store import SpecStore
from aggregator.proxy.api.warehouse import Warehouse
from aggregator.proxy.api.worker_client import WorkerClient
from aggregator.proxy.context import Services
from aggregator.proxy.policy.rbac import Principal
from aggregator.settings import Settings


class ApiLimits(BaseModel):
    """Limits of the API's data endpoints."""

    model_config = ConfigDict(frozen=True)

    query_timeout_s: float = Field(
        10.0, gt=0, description="AGGREGATOR_API_QUERY_TIMEOUT_S: a query running longer is cancelled.")
    export_timeout_s: float = Field(
        600.0, gt=0, description="AGGREGATOR_API_EXPORT_TIMEOUT_S: an export still streaming after this long is "
        "cut (it holds a query slot while it runs).")
    max_row_bytes: int = Field(
        1 << 20, gt=0, description="AGGREGATOR_API_MAX_ROW_BYTES: bytes of one value or row a query or export "
        "may produce, enforced by the database (SQLite's length limit, a guard column on PostgreSQL).")
    max_response_bytes: int = Field(
        64 << 20, gt=0, description="AGGREGATOR_API_MAX_RESPONSE_BYTES: bytes of one query answer; past it the "
        "stream ends with an error.")
    query_concurrency: int = Field(
        4, gt=0, description="AGGREGATOR_API_QUERY_CONCURRENCY: queries and exports running at once in one proxy "
        "process; more are answered 503 with Retry-After.")
    query_per_user: int = Field(
        2, gt=0, description="AGGREGATOR_API_QUERY_PER_USER: queries and exports one user may run at once; more "
        "are answered 429 with Retry-After.")
    events_per_user: int = Field(
        4, gt=0, description="AGGREGATOR_API_EVENTS_PER_USER: live event streams (`GET /api/events`) one user may "
        "hold open at once in one proxy process; more are answered 429 with Retry-After.")
    events_total: int = Field(
        200, gt=0, description="AGGREGATOR_API_EVENTS_TOTAL: live event streams open at once in one proxy "
        "process; more are answered 429 with Retry-After.")
    events_heartbeat_s: float = Field(
        15.0, gt=0, description="AGGREGATOR_API_EVENTS_HEARTBEAT_S: a comment line is sent after this long "
        "without an event, so proxies in between keep the stream open and a gone client is noticed.")
    events_idle_s: float = Field(
        300.0, gt=0, description="AGGREGATOR_API_EVENTS_IDLE_S: a stream with no event for this long ends "
        "(the client reconnects with Last-Event-ID).")
    events_max_s: float = Field(
        900.0, gt=0, description="AGGREGATOR_API_EVENTS_MAX_S: every stream ends after this long, so a replica "
        "being replaced drains; the client reconnects (to any replica) with Last-Event-ID.")
    events_poll_s: float = Field(
        1.0, gt=0, description="AGGREGATOR_API_EVENTS_POLL_S: how often the one reader of each proxy process "
        "reads new records of Dagster's event log while streams are open.")
    alert_tests_per_minute: int = Field(
        6, gt=0, description="AGGREGATOR_API_ALERT_TESTS_PER_MINUTE: channel tests one user may send per minute "
        "(that many at once, then refilled evenly); more are answered 429 with Retry-After.")
    reload_after_write: bool = Field(
        True, description="Reload the Dagster code location after each accepted spec write.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiLimits:
        env = os.environ if environ is None else environ
        values = {name: env[var] for name, var in ENV.items() if env.get(var)}
        return cls.model_validate(values)


ENV = {"query_timeout_s": "AGGREGATOR_API_QUERY_TIMEOUT_S", "export_timeout_s": "AGGREGATOR_API_EXPORT_TIMEOUT_S",
       "max_row_bytes": "AGGREGATOR_API_MAX_ROW_BYTES", "max_response_bytes": "AGGREGATOR_API_MAX_RESPONSE_BYTES",
       "query_concurrency": "AGGREGATOR_API_QUERY_CONCURRENCY", "query_per_user": "AGGREGATOR_API_QUERY_PER_USER",
       "events_per_user": "AGGREGATOR_API_EVENTS_PER_USER", "events_total": "AGGREGATOR_API_EVENTS_TOTAL",
       "events_heartbeat_s": "AGGREGATOR_API_EVENTS_HEARTBEAT_S", "events_idle_s": "AGGREGATOR_API_EVENTS_IDLE_S",
       "events_max_s": "AGGREGATOR_API_EVENTS_MAX_S", "events_poll_s": "AGGREGATOR_API_EVENTS_POLL_S",
       "alert_tests_per_minute": "AGGREGATOR_API_ALERT_TESTS_PER_MINUTE"}


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
    slots: QuerySlots = field(init=False)

    def __post_init__(self) -> None:
        self.slots = QuerySlots(self.limits.query_concurrency, self.limits.query_per_user)

    @property
    def graphql_url(self) -> str:
        settings = self.services.settings
        return f"{settings.upstream}{settings.path_prefix}/graphql"

    async def catalog(self) -> Catalog:
        result: Catalog = await self.services.run_io(
            lambda: read_catalog(self.platform.pipelines_dir, self.specs.texts()))
        return result

    async def tables_of(self, principal: Principal) -> list[AssetTable]:
        """Warehouse tables `principal` may query: those of the pipelines in the grant."""
        catalog = await self.catalog()
        return [t for t in catalog.tables if t.destination == WAREHOUSE and in_scope(principal, t.pipeline)]
