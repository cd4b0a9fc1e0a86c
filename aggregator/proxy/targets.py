"""Moved to `aggregator.proxy.policy.catalog`; re-exported so modules not yet updated keep importing it."""

from __future__ import annotations

from aggregator.proxy.policy.catalog import Catalog, ScopeResolver

__all__ = ["Catalog", "ScopeResolver"]
