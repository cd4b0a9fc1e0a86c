"""Authorization of GraphQL documents: every root field of every operation against the permission table."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregator.proxy.graphql_ops import GraphQLInspector, ParsedDocument
from aggregator.proxy.rbac import SCOPABLE, Decision, Principal, Role, required_role
from aggregator.proxy.targets import ScopeResolver, extract_targets

log = logging.getLogger(__name__)


@dataclass
class GraphQLDecision:
    decision: Decision
    targets: dict[str, list[str]] = field(default_factory=dict)


def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for kind, values in more.items():
        into.setdefault(kind, []).extend(v for v in values if v not in into.get(kind, []))


async def authorize_document(
    principal: Principal, parsed: ParsedDocument, variables: Mapping[str, Any] | None,
    inspector: GraphQLInspector, resolver: ScopeResolver,
) -> GraphQLDecision:
    targets: dict[str, list[str]] = {}
    for root in parsed.root_fields:
        needed = required_role(root.operation_type, root.name)
        if needed is None:
            return GraphQLDecision(Decision(False, f"{root.operation_type} {root.name} is not classified",
                                            missing=f"unclassified:{root.name}"), targets)
        if needed == Role.viewer:
            continue
        field_targets = extract_targets(root.name, inspector.arguments(root, variables))
        _merge(targets, field_targets)
        if not principal.may(needed):
            return GraphQLDecision(Decision(False, f"{root.name} needs role {needed.name}; "
                                            f"{principal.user} has {principal.role.name}",
                                            missing=f"{needed.name}:{root.name}"), targets)
        if principal.scope is not None:
            if root.name not in SCOPABLE:
                return GraphQLDecision(Decision(False, f"{root.name} needs an unscoped {needed.name} grant",
                                                missing=f"{needed.name}:{root.name} (all pipelines)"), targets)
            bad = await resolver.out_of_scope(field_targets, principal.scope)
            if bad:
                return GraphQLDecision(Decision(False, f"{root.name} on {', '.join(bad)} is outside the grant "
                                                f"({', '.join(sorted(principal.scope))})",
                                                missing=f"{needed.name}:{root.name} on {', '.join(bad)}"), targets)
    return GraphQLDecision(Decision(True, "allowed"), targets)
