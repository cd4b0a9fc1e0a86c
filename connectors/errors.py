"""One family of connector errors, so callers can catch them together."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class: a connector could not do what it was asked."""


class ConnectorConfigError(ConnectorError, ValueError):
    """The connector's configuration is wrong; the message says which field and what is allowed."""


class SourceReadError(ConnectorError):
    """Reading from a source failed; the message names where (file and line, sanitized URL, table)."""
