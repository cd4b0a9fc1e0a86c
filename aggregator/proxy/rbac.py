"""Moved to `aggregator.proxy.policy.rbac`; re-exported so modules not yet updated keep importing from here."""

from __future__ import annotations

from aggregator.proxy.policy.rbac import (
    ADMIN_ROLE,
    MUTATION_ROLES,
    REPORT_ROLE,
    REPORT_ROUTES,
    SCOPABLE,
    Decision,
    Principal,
    Role,
    required_role,
)

__all__ = ["ADMIN_ROLE", "MUTATION_ROLES", "REPORT_ROLE", "REPORT_ROUTES", "SCOPABLE", "Decision", "Principal",
           "Role", "required_role"]
