"""Authorization of GraphQL documents: every root field of every operation against the permission table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregator.proxy.graphql_ops import GraphQLInspector, ParsedDocument, RootField
from aggregator.proxy.policy.catalog import ScopeResolver, ScopeUnavailable, TooManyRuns
from aggregator.proxy.policy.rbac import SCOPABLE, Decision, Principal, Role, required_role
from aggregator.proxy.policy.target_fields import Kind
from aggregator.proxy.policy.targets import Target, UnmappedField, audit_targets, extract_targets

log = logging.getLogger(__name__)

# How many out-of-scope targets a refusal names; the rest is a count, so a 1,500-id request gets a short body.
MAX_NAMED_IN_REFUSAL = 5


@dataclass
class GraphQLDecision:
    decision: Decision
    targets: dict[str, list[str]] = field(default_factory=dict)


def _deny(reason: str, missing: str, targets: list[Target]) -> GraphQLDecision:
    return GraphQLDecision(Decision(False, reason, missing=missing), audit_targets(targets))


def _named(bad: list[Target]) -> str:
    shown = ", ".join(f"{t.kind.value}:{t.name}" for t in bad[:MAX_NAMED_IN_REFUSAL])
    more = len(bad) - MAX_NAMED_IN_REFUSAL
    return f"{shown} and {more} more" if more > 0 else shown


async def authorize_document(
    principal: Principal, parsed: ParsedDocument, variables: Mapping[str, Any] | None,
    inspector: GraphQLInspector, resolver: ScopeResolver,
) -> GraphQLDecision:
    """Allow only if every root field is allowed; for a scoped grant, every target of every field in scope."""
    everything: list[Target] = []
    scoped: list[tuple[RootField, Role, list[Target]]] = []
    for root in parsed.root_fields:
        needed = required_role(root.operation_type, root.name)
        if needed is None:
            return _deny(f"{root.operation_type} {root.name} is not classified", f"unclassified:{root.name}",
                         everything)
        if needed == Role.viewer:
            continue
        try:
            field_targets = extract_targets(inspector.schema, root.name, inspector.arguments(root, variables))
        except UnmappedField as exc:
            if principal.scope is not None:
                return _deny(str(exc), f"{needed.name}:{root.name} (all pipelines)", everything)
            field_targets = []  # an unscoped grant does not depend on targets; they are only audited
        everything.extend(field_targets)
        if not principal.may(needed):
            return _deny(f"{root.name} needs role {needed.name}; {principal.user} has {principal.role.name}",
                         f"{needed.name}:{root.name}", everything)
        if principal.scope is not None:
            if root.name not in SCOPABLE:
                return _deny(f"{root.name} needs an unscoped {needed.name} grant",
                             f"{needed.name}:{root.name} (all pipelines)", everything)
            if not field_targets:
                return _deny(f"{root.name} names no target that could be checked against the grant",
                             f"{needed.name}:{root.name} (all pipelines)", everything)
            scoped.append((root, needed, field_targets))
    if principal.scope is not None and scoped:
        scope = principal.scope
        try:
            # All fields at once: one catalog read (cached) and one run query for the whole document.
            bad = set(await resolver.outside(everything, scope))
        except TooManyRuns as exc:
            root, needed, _ = next(s for s in scoped if any(t.kind in (Kind.run, Kind.backfill) for t in s[2]))
            return _deny(str(exc), f"{needed.name}:{root.name} (a bounded number of ids)", everything)
        except ScopeUnavailable as exc:
            log.warning("scope check failed: %s", exc)
            return _deny(f"{exc}; refused rather than guessed", "scope-check", everything)
        for root, needed, field_targets in scoped:
            outside = [t for t in field_targets if t in bad]
            if outside:
                grant = ", ".join(sorted(scope))
                return _deny(f"{root.name} on {_named(outside)} is outside the grant ({grant})",
                             f"{needed.name}:{root.name} on {_named(outside)}", everything)
    return GraphQLDecision(Decision(True, "allowed"), audit_targets(everything))
