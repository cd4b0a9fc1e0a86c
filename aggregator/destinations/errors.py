"""Destination errors: a load failed, or the source's schema changed in a way the policy forbids."""

from __future__ import annotations


class DestinationError(Exception):
    """A load or transform failed in the warehouse; the message names the table and the sanitized URL."""


class SchemaChangeError(DestinationError, ValueError):
    """The source's columns no longer fit the table under the configured `schema_policy`."""
