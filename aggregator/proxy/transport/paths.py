"""One normalized request path: decoded once, checked, then used for routing AND forwarding.

Why: the proxy used to route on `scope["path"]` (percent-decoded by uvicorn, dot segments kept) while the
HTTP client that forwarded the request removed dot segments, so `POST /report_asset_materialization/x/../../graphql`
was authorized as an asset write and reached Dagster as `POST /graphql`. Whatever reaches Dagster must be the
path the proxy decided on, so the request path is normalized here once, anything ambiguous is refused, and the
forwarded path is re-encoded from the normalized one, never taken from the client's bytes.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

# Re-encoding of the normalized path: RFC 3986 pchar minus ";" (refused anyway), so Starlette's single
# decode in Dagster yields exactly the normalized string again.
_SAFE = "/:@!$&'()*+,=-._~"
_REFUSED_CHARS = re.compile(r"[\\;%\x00-\x1f\x7f]")


class PathRejected(ValueError):
    """The request path does not normalize to one unambiguous path; it is refused with 400."""


def normalize_path(raw: bytes) -> str:
    """Decode `raw` (the request target's path, still percent-encoded) once and return the canonical path.

    Refused: anything not starting with "/", encoded slashes (`%2F`, ambiguous with a separator), backslashes,
    `;` (path parameters), NUL and other control characters, percent signs left after decoding (double encoding)
    and dot segments (`.`/`..`, also as `%2e`): browsers resolve dot segments before sending, so only a crafted
    request contains them. Repeated slashes are folded into one."""
    if not raw.startswith(b"/"):
        raise PathRejected("request path must start with '/'")
    if b"%2f" in raw.lower() or b"%5c" in raw.lower():
        raise PathRejected("encoded '/' or '\\' in the request path")
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PathRejected("request path is not UTF-8 after percent-decoding") from exc
    bad = _REFUSED_CHARS.search(decoded)
    if bad:
        raise PathRejected(f"character {bad.group()!r} is not allowed in the request path")
    segments = [s for s in decoded.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise PathRejected("dot segments ('.', '..') are not allowed in the request path")
    path = "/" + "/".join(segments)
    if decoded.endswith("/") and segments:
        path += "/"
    return path


def encode_path(path: str) -> str:
    """The request target sent upstream for a normalized path."""
    return quote(path, safe=_SAFE)


def normalize_scope(scope: MutableMapping[str, Any]) -> None:
    """Replace `path` and `raw_path` of an ASGI scope by the normalized path (raises PathRejected)."""
    raw = scope.get("raw_path")
    if not raw:
        raw = quote(scope["path"], safe=_SAFE + "%;\\").encode("ascii")
    path = normalize_path(raw)
    scope["path"] = path
    scope["raw_path"] = encode_path(path).encode("ascii")
