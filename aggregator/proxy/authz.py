"""Moved to `aggregator.proxy.policy.authz`; re-exported so modules not yet updated keep importing it."""

from __future__ import annotations

from aggregator.proxy.policy.authz import GraphQLDecision, authorize_document

__all__ = ["GraphQLDecision", "authorize_document"]
