"""What every part of the proxy shares (`Services`) and what one request carries (`RequestContext`).

`ws`, `oidc` and the routes receive these instead of the `ProxyApp` itself, so nothing imports `app` back
(the old app <-> ws <-> oidc import circle). Every decision goes through `Services.record_decision`, which
writes the one structured log line and the audit row together, so no path can decide without leaving both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.graphql_ops import GraphQLInspector
from aggregator.proxy.rbac import Principal
from aggregator.proxy.storage.audit import AuditLog, AuditRecord
from aggregator.proxy.storage.store import Store
from aggregator.proxy.targets import ScopeResolver

log = logging.getLogger("aggregator.proxy.decision")


@dataclass
class RequestContext:
    """One request as the proxy sees it: normalized path, who asks, from where."""

    scope: MutableMapping[str, Any]
    request_id: str
    ip: str
    rel: str | None = None  # path relative to the path prefix; None when outside it
    principal: Principal | None = None

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return str(self.scope["path"])


@dataclass
class Services:
    """Long-lived parts shared by all requests."""

    settings: ProxySettings
    store: Store
    audit: AuditLog
    inspector: GraphQLInspector
    resolver: ScopeResolver
    # Audit writes and store look-ups get their own pool, never shared with password hashing (see auth.py).
    io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "proxy-io"))

    async def run_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    async def record_decision(
        self, ctx: RequestContext, *, event: str, decision: str, operation: str | None = None,
        reason: str | None = None, targets: dict[str, list[str]] | None = None, run_id: str | None = None,
        username: str | None = None, role: str | None = None, status: int | None = None, audit: bool = True,
    ) -> None:
        """The structured log line and the audit row of one decision. `audit=False` only for allowed reads,
        which are the bulk of the traffic and logged at debug level."""
        principal = ctx.principal
        user = username if username is not None else (principal.user if principal else None)
        role_name = role if role is not None else (principal.role.name if principal else None)
        level = logging.DEBUG if not audit else logging.INFO
        log.log(level, "decision=%s event=%s user=%s role=%s operation=%s status=%s reason=%s ip=%s request_id=%s%s",
                decision, event, user, role_name, operation, status, reason, ctx.ip, ctx.request_id,
                f" runs={run_id}" if run_id else "")
        if not audit:
            return
        record = AuditRecord(event=event, username=user, role=role_name, source_ip=ctx.ip,
                             request_id=ctx.request_id, operation=operation, targets=targets or {},
                             decision=decision, reason=reason, run_id=run_id)
        try:
            await self.run_io(self.audit.record, record)
        except Exception:
            log.exception("audit write failed request_id=%s", ctx.request_id)

    def close(self) -> None:
        self.io_pool.shutdown(wait=False, cancel_futures=True)
