"""The proxy's own endpoints outside `/api/`: who am I, the audit log, Prometheus metrics, a health check.

They are typed routes like the rest of the API, so the same front door, role checks, error shape, audit and
OpenAPI entry hold for them; only the sign-in forms and the OIDC redirects (identity/) are not routes here,
since they answer HTML and redirects rather than JSON.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field
from starlette.responses import Response

from aggregator.metrics.proxy import PROXY_REGISTRY
from aggregator.proxy.api.router import ApiRequest, Route, ability
from aggregator.proxy.context import Services
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.audit import AuditQuery, AuditRecord


class Ability(BaseModel):
    allowed: bool = Field(description="Whether the route's role (and unscoped-grant) check lets the caller through.")
    reason: str | None = Field(description="Why not, when not: the role or grant it needs.")


class Me(BaseModel):
    user: str = Field(description="The user the session or token acts for.")
    role: str = Field(description="viewer, launcher, editor or admin.")
    via: str = Field(description="session, oidc or token.")
    scope: list[str] | None = Field(description="Pipelines the role is limited to; null for all.")
    abilities: dict[str, Ability] = Field(
        default_factory=dict,
        description="Per API operation (its operationId): may the caller use it, and why not. Derived from the "
                    "route table, so the Console shows only what the API would allow; a scoped grant is still "
                    "checked per pipeline when the request names one.")


class Health(BaseModel):
    status: str = Field(description="`ok` when the proxy answers; says nothing about Dagster behind it.")


def routes(services: Services, table: Callable[[], list[Route]] = list) -> list[Route]:
    """`table` gives the whole route table (this list is part of it) for the abilities of `/_auth/me`."""

    async def whoami(req: ApiRequest) -> Me:
        """Who this session or token is, with its role, scope and what it may do."""
        p = req.principal
        abilities = {}
        for route in table():
            if not route.public:
                allowed, reason = ability(p, route)
                abilities[route.operation_id] = Ability(allowed=allowed, reason=reason)
        return Me(user=p.user, role=p.role.name, via=p.via, scope=sorted(p.scope) if p.scope is not None else None,
                  abilities=abilities)

    async def read_audit(req: ApiRequest) -> list[AuditRecord]:
        """Audit rows, newest first (an unscoped admin only)."""
        records: list[AuditRecord] = await services.run_io(services.audit.query, req.query_as(AuditQuery))
        return records

    async def metrics(req: ApiRequest) -> Response:
        """Prometheus metrics of this proxy (an unscoped grant: route and pipeline labels name every pipeline)."""
        from prometheus_client import generate_latest

        return Response(generate_latest(PROXY_REGISTRY), media_type="text/plain; version=0.0.4; charset=utf-8",
                        headers={"cache-control": "no-store"})

    async def healthz(req: ApiRequest) -> Health:
        """Liveness of the proxy itself, for load balancers and `aggregator dev`; public, holds no data."""
        return Health(status="ok")

    return [
        Route("GET", "/_auth/me", whoami, "Who am I", response=Me),
        Route("GET", "/_auth/api/audit", read_audit, "Read the audit log", Role.admin, query=AuditQuery, unscoped=True,
              response=list[AuditRecord]),
        Route("GET", "/metrics", metrics, "Prometheus metrics", response=None, media=("text/plain",), unscoped=True),
        Route("GET", "/healthz", healthz, "Health check", response=Health, public=True),
    ]
