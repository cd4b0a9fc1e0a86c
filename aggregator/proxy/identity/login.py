"""The sign-in page, sign-in and sign-out (local users; OIDC is in oidc.py)."""

from __future__ import annotations

import asyncio
import html
import logging
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.identity.authenticate import session_cookie
from aggregator.proxy.identity.login_throttle import HashPool, HashPoolBusy, LoginThrottle
from aggregator.proxy.storage.login_failures import SharedLoginFailures

log = logging.getLogger(__name__)


def safe_next(value: str | None, settings: ProxySettings) -> str:
    """Only same-site relative paths: `//evil.example` and `https://...` would be open redirects."""
    default = settings.path_prefix + "/"
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else default


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Sign in — Data Aggregator</title>
<link rel="icon" href="{prefix}/favicon.ico">
<style>body{{font-family:sans-serif;max-width:22rem;margin:6rem auto}}input,button{{width:100%;margin:.3rem 0;
padding:.5rem}}.err{{color:#b00}}</style></head><body><h1>Data Aggregator</h1>{error}
<form method="post" action="{prefix}/_auth/login"><input type="hidden" name="next" value="{next}">
<label>User <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>{oidc}
<p>The <a href="{prefix}/console/">Console</a> (connections, logs, analytics, uploads) and the
<a href="{prefix}/">Dagster UI</a> share this sign-in.</p></body></html>"""


def login_page(settings: ProxySettings, next_url: str, error: str = "", status: int = 200) -> HTMLResponse:
    oidc = (f'<p><a href="{settings.path_prefix}/_auth/oidc/login?next={quote(next_url)}">Sign in with SSO</a></p>'
            if settings.oidc else "")
    body = LOGIN_PAGE.format(prefix=settings.path_prefix, next=html.escape(next_url),
                             error=f'<p class="err">{html.escape(error)}</p>' if error else "", oidc=oidc)
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def set_session_cookie(response: Response, settings: ProxySettings, token: str) -> None:
    response.set_cookie(settings.cookie_name, token, max_age=int(settings.session_absolute_s), path="/",
                        secure=settings.https, httponly=True, samesite="lax")


class LoginHandler:
    """Sign-in and sign-out. Attempts are admitted by `LoginThrottle` before verification and hashed in
    `HashPool`, never in the thread pool that serves session and token look-ups."""

    def __init__(self, services: Services) -> None:
        self.services, self.settings = services, services.settings
        self.throttle = LoginThrottle(per_pair=self.settings.login_failures_per_user,
                                      per_user=self.settings.login_failures_per_account,
                                      per_source=self.settings.login_failures_per_ip,
                                      window_s=self.settings.login_window_s)
        self.hashing = HashPool(self.settings.login_hash_workers, self.settings.login_hash_queue)
        # Every replica's failures count (issue 19): the counters live in the proxy database too.
        self.shared_failures = SharedLoginFailures(services.store.engine, self.settings.login_window_s)

    async def login(self, request: Request, ctx: RequestContext) -> Response:
        if request.method == "GET":
            return login_page(self.settings, safe_next(request.query_params.get("next"), self.settings))
        form = await request.form(max_files=0, max_fields=10)
        username = str(form.get("username", ""))[:200]
        password = str(form.get("password", ""))[:1024]
        next_url = safe_next(str(form.get("next", "")), self.settings)

        async def deny(reason: str, status: int, page_error: str, retry_after: float | None = None) -> Response:
            await self.services.record_decision(ctx, event="login", decision="deny", operation="POST /_auth/login",
                                                reason=reason, username=username, status=status,
                                                repeat_key=f"login-429:{ctx.ip}" if status == 429 else None)
            resp = login_page(self.settings, next_url, page_error, status=status)
            if retry_after is not None:
                resp.headers["retry-after"] = str(max(1, int(retry_after + 0.999)))
            return resp

        keys = self.throttle.shared_keys(username, ctx.ip)
        shared = await self.services.run_io(self.shared_failures.counts, keys.values())
        admission = self.throttle.admit(username, ctx.ip, shared)
        if not admission.admitted:
            return await deny(f"rate limited: {admission.reason}", 429,
                              "Too many failed sign-ins; try again later.", admission.retry_after)
        ok, user = False, None
        try:
            if admission.delay_s:
                await asyncio.sleep(admission.delay_s)  # distributed guessing of one account: slowed, not locked
            try:
                user = await self.hashing.run(self.services.store.verify_password, username, password)
            except HashPoolBusy:
                return await deny("rate limited: sign-in capacity exhausted", 429,
                                  "Too many sign-ins right now; try again in a moment.", 1.0)
            ok = user is not None
        finally:
            self.throttle.finish(username, ctx.ip, ok)
            if ok:
                await self.services.run_io(self.shared_failures.clear, keys["pair"])
            else:
                await self.services.run_io(self.shared_failures.failed, keys.values())
        if user is None:
            return await deny("bad credentials or disabled", 401, "Unknown user or wrong password.")
        token = await self.services.run_io(self.services.store.create_session, user, self.settings.session_absolute_s)
        await self.services.record_decision(ctx, event="login", decision="allow", operation="POST /_auth/login",
                                            username=username, role=user.role.name, status=303)
        response = RedirectResponse(next_url, status_code=303)
        set_session_cookie(response, self.settings, token)
        return response

    async def logout(self, request: Request, ctx: RequestContext) -> Response:
        store = self.services.store
        token = session_cookie(request.scope, self.settings)
        principal = await self.services.run_io(store.session_principal, token, self.settings.session_idle_s) \
            if token else None
        if token:
            await self.services.run_io(store.end_session, token)
        await self.services.record_decision(ctx, event="logout", decision="allow", operation="POST /_auth/logout",
                                            username=principal.user if principal else None,
                                            role=principal.role.name if principal else None)
        response = RedirectResponse(f"{self.settings.path_prefix}/_auth/login", status_code=303)
        response.delete_cookie(self.settings.cookie_name, path="/", secure=self.settings.https, httponly=True,
                               samesite="lax")
        return response

    def close(self) -> None:
        self.hashing.close()
