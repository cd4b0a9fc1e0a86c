"""Mask secrets in URLs before they reach a log line, an error or asset metadata."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials in common APIs.
SECRET_PARAMS = frozenset(
    {"access_token", "api_key", "apikey", "key", "token", "secret", "client_secret", "password", "sig", "signature"}
)


def sanitize_url(url: str, secret_params: Iterable[str] = ()) -> str:
    """Return `url` with any password and secret-looking query values replaced by `***`.

    `secret_params` names further query parameters to mask, e.g. an API key sent under a custom name."""
    secret = SECRET_PARAMS | {p.lower() for p in secret_params}
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in secret else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        # Nothing to mask: return it untouched (urlunsplit would turn sqlite:////abs/path into sqlite://abs/path).
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# Config options, headers and parameters whose value is a credential: the query-parameter set above, a few
# option names, and names ending like one (`X-Api-Key`, `x_auth_token`, `db_password`). The API refuses
# literal values for them and the connector JSON Schemas mark them `writeOnly` / `x-secret` (forms).
SECRET_KEYS = SECRET_PARAMS | {"private_key", "credentials", "authorization", "passphrase", "client_secret",
                               "account_key"}
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key", "_apikey", "_passphrase", "_credentials")


def is_secret_key(key: object) -> bool:
    """True for a key whose value is a credential."""
    name = str(key).lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(SECRET_SUFFIXES)
