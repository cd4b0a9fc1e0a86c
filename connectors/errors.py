"""One family of connector errors, so callers can catch them together."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: a connector could not do what it was asked."""


class ConnectorConfigError(ConnectorError, ValueError):
    """The connector's configuration is wrong; the message says which field and what is allowed."""


class SourceReadError(ConnectorError):
    """Reading from a source failed; the message names where (file and line, sanitized URL, table)."""


class HttpRequestError(SourceReadError):
    """An HTTP request failed for good: after retries, or with a status that retrying cannot fix."""

    def __init__(self, message: str, *, url: str, status: int | None, attempts: int) -> None:
        super().__init__(message)
        self.url = url  # already sanitized
        self.status = status
        self.attempts = attempts


class AuthError(HttpRequestError):
    """The API refused the credentials (401/403) or the token endpoint did not issue a token."""
