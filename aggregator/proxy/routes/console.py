"""The Console (docs/console.md): the single-page app built from `aggregator/console/` and shipped in the wheel.

Served under `/console/` behind the same front door as everything else (a browser without a session is sent to
the sign-in page and back). Files under `assets/` carry a content hash in their name, so they are cached for a
year; every other path below `/console/` is a page of the app and answers `index.html` (the app's router picks
the page), with the `<base href>` set to this proxy's path prefix so one build serves any prefix.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, RedirectResponse, Response

from aggregator.proxy.config import ProxySettings
from aggregator.proxy.refusals import refusal
from aggregator.proxy.transport.asgi import Receive, Scope, Send

CONSOLE_DIST = Path(__file__).resolve().parents[2] / "console" / "dist"
PREFIX = "/console"
# What the built index.html says; replaced per proxy so the app finds its assets and the API below a prefix.
BASE_HREF = '<base href="/console/" />'
IMMUTABLE = "private, max-age=31536000, immutable"  # private: the files are only served to a signed-in user

# The Console's own policy, stricter than Dagster's pages: only this origin's scripts, styles and API.
# 'unsafe-eval' is for the JSON Schema validator (ajv), which compiles each connector type's schema into a
# function at run time; 'unsafe-inline' styles are the chart library's computed style attributes.
CONSOLE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
               "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def is_console(rel: str | None) -> bool:
    return rel is not None and (rel == PREFIX or rel.startswith(PREFIX + "/"))


class ConsoleFiles:
    """GET/HEAD below `/console/`: hashed assets, else the app's index.html (client-side routes)."""

    def __init__(self, settings: ProxySettings, root: Path = CONSOLE_DIST) -> None:
        self.settings, self.root = settings, root
        self._index: bytes | None = None

    def index(self) -> bytes:
        if self._index is None:
            html = (self.root / "index.html").read_text(encoding="utf-8")
            if BASE_HREF not in html:
                raise RuntimeError(f"{self.root / 'index.html'} has no {BASE_HREF}: rebuild the Console")
            self._index = html.replace(BASE_HREF, f'<base href="{self.settings.path_prefix}{PREFIX}/" />').encode()
        return self._index

    def response(self, rel: str) -> Response:
        if rel == PREFIX:
            return RedirectResponse(f"{self.settings.path_prefix}{PREFIX}/", status_code=308)
        if not (self.root / "index.html").is_file():
            return refusal(503, "the Console is not built: run `npm ci && npm run build` in aggregator/console")
        below = rel[len(PREFIX) + 1:]
        if below.startswith("assets/"):
            # The path was normalized by the front door (no `..`); resolving again keeps it inside the root.
            path = (self.root / below).resolve()
            if not path.is_file() or self.root.resolve() not in path.parents:
                return refusal(404, f"no Console asset {below}")
            return FileResponse(path, headers={"cache-control": IMMUTABLE})
        return Response(self.index(), media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-cache"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send, rel: str) -> None:
        await self.response(rel)(scope, receive, send)
