"""Roles and pipeline scopes for the API, the same rules as the GraphQL policy (policy/rbac.py).

A grant's scope names pipelines (asset groups). Spec reads are viewer reads, like the Dagster UI's; writes
need editor on every pipeline the written file declares, before and after; data (queries, exports) is
readable only for the pipelines in the grant, since a scoped grant exists to fence data off.
"""

from __future__ import annotations

from collections.abc import Iterable

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.policy.rbac import Principal, Role


def in_scope(principal: Principal, pipeline: str) -> bool:
    return principal.scope is None or pipeline in principal.scope


def require(principal: Principal, role: Role, action: str, pipelines: Iterable[str] = ()) -> None:
    """403 naming the missing permission unless `principal` has `role` on every pipeline named."""
    if not principal.may(role):
        raise ApiError(403, f"{action} needs role {role.name}; {principal.user} has {principal.role.name}",
                       f"{role.name}:{action}")
    outside = sorted(p for p in set(pipelines) if not in_scope(principal, p))
    if outside:
        grant = ", ".join(sorted(principal.scope or ()))
        raise ApiError(403, f"{action} on {', '.join(outside)} is outside the grant ({grant})",
                       f"{role.name}:{action} on {', '.join(outside)}")


def require_unscoped(principal: Principal, role: Role, action: str) -> None:
    require(principal, role, action)
    if principal.scope is not None:
        raise ApiError(403, f"{action} needs an unscoped {role.name} grant", f"{role.name}:{action} (all pipelines)")
