"""`GET /api/alerts/history`: the alerts the platform sent, held, de-duplicated or resolved (aggregator/alerts/).

The same rows as `aggregator alerts history`, from the platform database (AGGREGATOR_PLATFORM_DB_URL, else
`platform.db` under AGGREGATOR_HOME). A scoped grant sees the alerts of its pipelines only: an alert about the
platform itself (no pipeline) or another pipeline names things outside the grant.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aggregator.alerts.history import AlertStore, alerts_db_url
from aggregator.proxy.api.access import require
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role


class AlertHistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500, description="Rows at most, newest first.")
    pipeline: str | None = Field(None, max_length=128, description="Only alerts about this pipeline.")
    status: Literal["sent", "failed", "deduplicated", "resolved", "held"] | None = Field(
        None, description="Only rows with this outcome.")


class AlertEntry(BaseModel):
    """One row of the alert history."""

    id: int = Field(description="Row id; larger is newer.")
    at: dt.datetime = Field(description="When it was recorded (UTC).")
    status: str = Field(description="sent, failed, deduplicated, resolved or held (quiet hours).")
    kind: str = Field(description="What happened: run_failure, check_failure, freshness, ...")
    channel: str | None = Field(description="The channel it went to, if any.")
    pipeline: str | None = Field(description="The pipeline it is about; null for the platform itself.")
    subject: str = Field(description="The de-duplication key of the incident.")
    run_id: str | None = Field(description="The Dagster run it is about, when there is one.")
    title: str = Field(description="The alert's one-line title.")
    detail: str | None = Field(description="More text, as sent (secrets redacted at the source).")


def routes(api: ApiState) -> list[Route]:
    stores: dict[str, AlertStore] = {}

    def _history(query: AlertHistoryQuery, scope: frozenset[str] | None) -> list[AlertEntry]:
        url = alerts_db_url(api.platform.home)
        store = stores.get(url) or stores.setdefault(url, AlertStore(url))
        # A scoped grant's rows are filtered after the query: ask for more so a page still fills.
        limit = query.limit if scope is None else min(query.limit * 10, 5000)
        rows = store.history(limit=limit, pipeline=query.pipeline, status=query.status)
        if scope is not None:
            rows = [r for r in rows if r.pipeline in scope]
        return [AlertEntry(id=r.id, at=r.at, status=r.status, kind=r.kind, channel=r.channel, pipeline=r.pipeline,
                           subject=r.subject, run_id=r.run_id, title=r.title, detail=r.detail)
                for r in rows[:query.limit]]

    async def alert_history(req: ApiRequest) -> list[AlertEntry]:
        """Alert history, newest first; a scoped grant sees its pipelines' alerts only."""
        query = req.query_as(AlertHistoryQuery)
        require(req.principal, Role.viewer, "alert_history", [query.pipeline] if query.pipeline else [])
        entries: list[AlertEntry] = await api.services.run_io(_history, query, req.principal.scope)
        return entries

    return [Route("GET", "/api/alerts/history", alert_history, "Alert history", query=AlertHistoryQuery,
                  response=list[AlertEntry])]
