"""`GET /api/alerts/history`: the alerts the platform sent, held, de-duplicated or resolved (aggregator/alerts/);
`POST /api/alerts/channels/{name}/test`: a test message through one channel, sent by the worker.

The same rows as `aggregator alerts history`, from the platform database (AGGREGATOR_PLATFORM_DB_URL, else
`platform.db` under AGGREGATOR_HOME). A scoped grant sees the alerts of its pipelines only: an alert about the
platform itself (no pipeline) or another pipeline names things outside the grant.

A channel test reaches the channel's receiver with its secrets, which every pipeline's alerts share: it needs
the grant that may change the channel (an unscoped editor), is rate limited per user, and is forwarded to the
worker, which resolves the secrets from its own environment and sends through the real delivery code. The proxy
never resolves or sends; it records the worker's answer in the alert history (and the request in the audit).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aggregator.alerts.history import AlertStore, alerts_db_url
from aggregator.proxy.api.access import require
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.api.worker_client import WORKER_STATUSES
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.transport.ratelimit import TokenBuckets


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


class ChannelTestResult(BaseModel):
    """What the worker's test of one channel did; the same outcome is a row of the alert history."""

    channel: str = Field(description="The channel tested.")
    delivered: bool = Field(description="Whether the channel's receiver took the test message.")
    attempts: int = Field(description="Attempts made (the channel's delivery policy); 0 when a secret was missing.")
    error: str | None = Field(description="Why it was not delivered; sanitized (no URL path, no secret).")
    title: str = Field(description="The test message's title, as the receiver got it.")


def routes(api: ApiState) -> list[Route]:
    stores: dict[str, AlertStore] = {}
    per_minute = api.limits.alert_tests_per_minute
    buckets = TokenBuckets(per_minute / 60, per_minute)

    def _store() -> AlertStore:
        url = alerts_db_url(api.platform.home)
        return stores.get(url) or stores.setdefault(url, AlertStore(url))

    def _history(query: AlertHistoryQuery, scope: frozenset[str] | None) -> list[AlertEntry]:
        store = _store()
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

    async def test_alert_channel(req: ApiRequest) -> ChannelTestResult:
        """Send a clearly marked test message through one channel (by the worker, with its environment's
        secrets); the outcome is answered and recorded in the alert history."""
        name = req.params["name"]
        wait = buckets.take(req.principal.user)
        if wait:
            raise ApiError(429, f"at most {per_minute} channel tests per minute per user "
                           "(AGGREGATOR_API_ALERT_TESTS_PER_MINUTE); try again shortly", retry_after=wait)
        req.ctx.scope.setdefault("state", {})["api_targets"] = {"alert_channels": [name]}
        answer = await api.worker.call("send-test-alert", {"channel": name, "requested_by": req.principal.user})
        result = ChannelTestResult.model_validate({k: answer.get(k) for k in ChannelTestResult.model_fields})
        await api.services.run_io(lambda: _store().record_test(
            channel=name, title=result.title, subject=str(answer.get("subject") or f"test:{name}"),
            delivered=result.delivered, attempts=result.attempts, error=result.error))
        return result

    return [Route("GET", "/api/alerts/history", alert_history, "Alert history", query=AlertHistoryQuery,
                  response=list[AlertEntry]),
            Route("POST", "/api/alerts/channels/{name}/test", test_alert_channel,
                  "Send a test message through an alert channel", Role.editor, unscoped=True,
                  response=ChannelTestResult, statuses=(429, *WORKER_STATUSES))]
