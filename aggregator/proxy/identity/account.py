"""The proxy's own small pages beside Dagster's UI: the signed-in account with its sign-out button, and the icon.

Dagster's UI shows no user and has no sign-out (it knows no users); `/_auth/logout` opened in the browser is the
documented place for both (docs/security.md). The icon is served here, publicly: the sign-in page's
`/favicon.ico` request answered 401 and wrote an audit `deny` row on every page load (newcomer review 11).
"""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, Response

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.policy.rbac import Principal

# A 16x16 grid mark in the product's one colour; SVG, which every current browser takes for /favicon.ico.
FAVICON_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    b'fill="#4f43dd"/><path d="M4 11V5h2v6zm3 0V7h2v4zm3 0V4h2v7z" fill="#fff"/></svg>'
)
FAVICON_PATHS = frozenset({"/favicon.ico", "/favicon.svg"})


def favicon() -> Response:
    return Response(FAVICON_SVG, media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})


ACCOUNT_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Account — Data Aggregator</title>
<link rel="icon" href="{prefix}/favicon.ico"><style>body{{font-family:sans-serif;max-width:26rem;margin:6rem auto}}
button{{width:100%;margin:.3rem 0;padding:.5rem}}dt{{font-weight:bold}}</style></head><body><h1>Data Aggregator</h1>
{body}</body></html>"""


def account_page(settings: ProxySettings, principal: Principal | None) -> HTMLResponse:
    """Who is signed in (user, role, scope, how) and a sign-out form; a sign-in link when nobody is."""
    prefix = settings.path_prefix
    if principal is None:
        body = f'<p>You are not signed in.</p><p><a href="{prefix}/_auth/login">Sign in</a></p>'
    else:
        scope = "every pipeline" if principal.scope is None else ", ".join(sorted(principal.scope))
        body = (f"<dl><dt>Signed in as</dt><dd>{html.escape(principal.user)}</dd>"
                f"<dt>Role</dt><dd>{html.escape(principal.role.name)}</dd>"
                f"<dt>Pipelines</dt><dd>{html.escape(scope)}</dd>"
                f"<dt>Through</dt><dd>{html.escape(principal.via)}</dd></dl>")
        if principal.via == "session":
            body += (f'<form method="post" action="{prefix}/_auth/logout"><button type="submit">Sign out</button>'
                     f'</form>')
        body += f'<p><a href="{prefix}/">Back to the Dagster UI</a> · <a href="{prefix}/console/">Console</a></p>'
    return HTMLResponse(ACCOUNT_PAGE.format(prefix=prefix, body=body), headers={"cache-control": "no-store"})
