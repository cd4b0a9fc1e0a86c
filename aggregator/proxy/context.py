"""What every part of the proxy shares (`Services`) and what one request carries (`RequestContext`).

`ws`, `oidc` and the routes receive these instead of the `ProxyApp` itself, so nothing imports `app` back
(the old app <-> ws <-> oidc import circle). Every decision goes through `Services.record_decision`, which
writes the one structured log line and the audit row together, so no path can decide without leaving both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.graphql_ops import GraphQLInspector
from aggregator.proxy.policy.catalog import ScopeResolver
from aggregator.proxy.policy.rbac import Principal
from aggregator.proxy.refusals import refusal
from aggregator.proxy.storage.audit import AuditLog, AuditRecord
from aggregator.proxy.storage.store import Store
from aggregator.proxy.transport.asgi import Receive, Send

log = logging.getLogger("aggregator.proxy.decision")


@dataclass
class RequestContext:
    """One request as the proxy sees it: normalized path, who asks, from where."""

    scope: MutableMapping[str, Any]
    request_id: str
    ip: str
    rel: str | None = None  # path relative to the path prefix; None when outside it
    principal: Principal | None = None
    # Set once by the front door (identity/frontdoor.py): why there is no principal, for the 401 and its audit.
    auth_event: str = ""
    auth_reason: str = ""

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
    # Audit writes and store look-ups get their own pool, never shared with password hashing (see login.py).
    io_pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "proxy-io"))
    # Repeated refusals of a flood (429s) are audited once per key and window, then only logged: the audit
    # must show the flood without becoming its amplifier (one insert per refused request).
    repeat_window_s: float = 10.0
    _last_audited: dict[str, float] = field(default_factory=dict)

    async def run_io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    async def record_decision(
        self, ctx: RequestContext, *, event: str, decision: str, operation: str | None = None,
        reason: str | None = None, targets: dict[str, list[str]] | None = None, run_id: str | None = None,
        username: str | None = None, role: str | None = None, status: int | None = None, audit: bool = True,
        repeat_key: str | None = None,
    ) -> None:
        """The structured log line and the audit row of one decision. `audit=False` only for allowed reads,
        which are the bulk of the traffic and logged at debug level. With `repeat_key`, only the first
        decision per key in `repeat_window_s` is audited; the others are logged."""
        if audit and repeat_key is not None:
            now = time.monotonic()
            if now - self._last_audited.get(repeat_key, -self.repeat_window_s) < self.repeat_window_s:
                audit = False
            else:
                if len(self._last_audited) > 100_000:
                    self._last_audited.clear()
                self._last_audited[repeat_key] = now
                reason = f"{reason} (repeats within {self.repeat_window_s:g} s are logged, not audited)"
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

    async def refuse(self, ctx: RequestContext, receive: Receive, send: Send, status: int, event: str,
                     operation: str, reason: str, missing: str | None = None,
                     targets: dict[str, list[str]] | None = None, retry_after: float | None = None) -> None:
        """Record a refusal and answer it, always in the same shape. 429s are audited once per caller and
        window (a flood would otherwise turn into a flood of audit inserts)."""
        caller = (ctx.principal.token_id or ctx.principal.user) if ctx.principal else ctx.ip
        await self.record_decision(ctx, event=event, decision="deny", operation=operation,
                                   reason=reason if missing is None else f"{reason} (missing {missing})",
                                   targets=targets, status=status,
                                   repeat_key=f"{status}:{caller}" if status == 429 else None)
        await refusal(status, reason, missing, retry_after)(ctx.scope, receive, send)

    def close(self) -> None:
        self.io_pool.shutdown(wait=False, cancel_futures=True)
