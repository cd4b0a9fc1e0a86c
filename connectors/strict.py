"""Dagster resources accept unknown keyword arguments silently; a misspelt option should fail instead."""

from __future__ import annotations

from typing import Any

from connectors.errors import ConnectorConfigError


def reject_unknown(cls: type, data: dict[str, Any]) -> None:
    fields = getattr(cls, "model_fields", {})
    unknown = sorted(k for k in data if k not in fields)
    if unknown:
        raise ConnectorConfigError(
            f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
