"""The one front door: who is asking (once per request) and the one CSRF rule, for every path.

`ProxyApp` calls `identify_request` once, before it routes, for HTTP and WebSocket alike; GraphQL, the UI,
`/api/*`, `/metrics`, `/_auth/*` and the WebSocket relay only *read* `ctx.principal` (Starlette's
`AuthenticationMiddleware` shape). `admission` is the one rule that then lets a request through or names
why not: no principal on a non-public route is a 401; a request whose credentials the browser sent by
itself (the session cookie) and which is not a plain read must come from our own pages (CSRF).

The CSRF rule is deliberately not "writes only": a cross-site form POST to a route that changes nothing
(`POST /api/query`, a connection check, validation) still makes the victim's browser spend its grant, so
every method other than GET/HEAD/OPTIONS is covered, reads included, and so is every WebSocket upgrade
(browsers do not apply the same-origin policy to WebSockets). Bearer tokens are never sent by a browser on
its own, so token-authenticated requests are exempt. The sign-in and sign-out forms are covered without a
principal: they set or end the cookie (login CSRF).
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.identity.authenticate import identify
from aggregator.proxy.policy.rbac import Principal
from aggregator.proxy.transport.gateway import same_origin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Forms that set or end the session cookie: a cross-site POST to them is login CSRF even without a principal.
COOKIE_FORMS = frozenset({"/_auth/login", "/_auth/logout"})
CSRF_REASON = "cross-site request with a session cookie (CSRF)"


@dataclass(frozen=True)
class Refusal:
    """Why the front door turns a request away: 401 (who are you?) or 403 (CSRF), with its audit event."""

    status: int
    event: str
    reason: str
    missing: str | None = None


async def identify_request(services: Services, ctx: RequestContext) -> None:
    """Authenticate once (bearer token, else session cookie) and put the result on the request context."""
    who = await identify(ctx.scope, services.settings, services.store)
    ctx.principal = who.principal
    ctx.auth_event, ctx.auth_reason = who.event, who.reason


async def identify_again(services: Services, ctx: RequestContext) -> Principal | None:
    """Who the request's credentials name now: a long-lived connection (the WebSocket relay, a live event
    stream) asks again while it stays open, since a session can end, a token be revoked or a grant change."""
    return (await identify(ctx.scope, services.settings, services.store)).principal


async def still_grants(services: Services, ctx: RequestContext, principal: Principal) -> bool:
    """The request's credentials still give exactly `principal`'s grant (same user, role and scope)."""
    current = await identify_again(services, ctx)
    return (current is not None and current.user == principal.user and current.role == principal.role
            and current.scope == principal.scope)


def csrf_ok(ctx: RequestContext, settings: ProxySettings) -> bool:
    """The one CSRF rule (module docstring): ambient credentials on anything but a plain read need our origin."""
    principal = ctx.principal
    if principal is not None and principal.via == "token":
        return True
    if ctx.scope["type"] != "websocket" and ctx.method in SAFE_METHODS:
        return True
    if principal is None and ctx.rel not in COOKIE_FORMS:
        return True  # nothing ambient was borrowed; the 401 (or the public route) answers it
    return same_origin(ctx.scope, settings)


def admission(ctx: RequestContext, settings: ProxySettings, *, public: bool) -> Refusal | None:
    """None when the request may go on to its route; otherwise the refusal every transport answers in its shape."""
    if not public and ctx.principal is None:
        return Refusal(401, ctx.auth_event or "unauthenticated", ctx.auth_reason or "sign in or send a bearer token")
    if not csrf_ok(ctx, settings):
        return Refusal(403, "request", CSRF_REASON, "same-origin")
    return None
