"""Structured logs with a correlation id, and search over Dagster's event log."""
