"""`/graphql` over HTTP: decode, rate-limit, parse (bounded), decide, rewrite launches, forward, record.

Only the values parsed here are forwarded: the body Dagster receives is rebuilt from them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from aggregator.proxy.context import RequestContext, Services
from aggregator.proxy.graphql_ops import GraphQLBusy, GraphQLRejected
from aggregator.proxy.identity.frontdoor import Refusal
from aggregator.proxy.policy import bounded_json
from aggregator.proxy.policy.authz import authorize_document
from aggregator.proxy.policy.launch_tags import kubernetes_tags_of_launch, stamp_user
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.transport.asgi import Receive, Scope, Send, header
from aggregator.proxy.transport.forward import forward_http, read_body, upstream_headers
from aggregator.proxy.transport.ratelimit import TokenBuckets
from aggregator.proxy.transport.upstream import UpstreamPool


def query_params(scope: Scope) -> list[tuple[str, str]]:
    """Decoded the way Starlette (hence Dagster) decodes them: percent-escapes in names and values."""
    return parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)


@dataclass(frozen=True)
class GraphQLRequest:
    """What a GraphQL request asks for, decoded where Dagster would look for it."""

    query: object
    variables: dict[str, Any] | None
    operation_name: str | None


def decode_request(method: str, content_type: str, body: bytes, scope: Scope) -> GraphQLRequest:
    """JSON or application/graphql POST bodies, else the query string; raises GraphQLRejected/ValueError."""
    if method == "POST" and content_type == "application/json":
        data = bounded_json.loads(body)
    elif method == "POST" and content_type == "application/graphql":
        data = {"query": body.decode()}
    else:
        data = dict(query_params(scope))
    if not isinstance(data, dict):
        raise GraphQLRejected("GraphQL request must be one JSON object (no batches)")
    variables = data.get("variables")
    if isinstance(variables, str):
        variables = bounded_json.loads(variables) if variables else None
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLRejected("GraphQL variables must be a JSON object")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise GraphQLRejected("operationName must be a string")
    return GraphQLRequest(data.get("query"), variables, operation_name)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def run_ids(body: bytes | None) -> list[str]:
    """Run ids in a mutation's response: `runId` anywhere, and `id` of any `run` object. The UI's launch
    selects only `run { id pipelineName }` (a Run's `id` is its run id), so `runId` alone missed UI launches."""
    try:
        data = json.loads(body or b"{}").get("data")
    except (ValueError, AttributeError):
        return []
    found: set[str] = set()

    def walk(node: object, under_run: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and _UUID.match(value) and (key == "runId" or (under_run and key == "id")):
                    found.add(value)
                else:
                    walk(value, key == "run")
        elif isinstance(node, list):
            for item in node:
                walk(item, under_run)

    walk(data, False)
    return sorted(found)


class GraphQLRoute:
    def __init__(self, services: Services, client: httpx.AsyncClient, pool: UpstreamPool | None,
                 buckets: TokenBuckets) -> None:
        self.services, self.client, self.pool, self.buckets = services, client, pool, buckets

    async def __call__(self, ctx: RequestContext, receive: Receive, send: Send, refused: Refusal | None = None) -> None:
        """`refused`: the front door's CSRF refusal of this request, answered once the operation is known."""
        scope, method, principal = ctx.scope, ctx.method, ctx.principal
        if principal is None:  # routed here only after identify(); never forward for nobody
            raise RuntimeError("GraphQL/report route reached without a principal")
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        body = await read_body(receive, self.services.settings.max_graphql_bytes) if method == "POST" else b""
        operation = f"{method} {ctx.path}"
        # Before parsing: the bucket is the cheapest check, so a flood of documents costs a dict look-up each
        # once the burst is spent, not a parse.
        key = f"{principal.via}:{principal.token_id or principal.user}"
        wait = self.buckets.take(key)
        if not wait and self.buckets.shared is not None:
            wait = await self.services.run_io(self.buckets.shared.take, key)
        if wait:
            return await self.services.refuse(ctx, receive, send, 429, "graphql", operation,
                                              "too many GraphQL requests; slow down", retry_after=wait)
        try:
            request = decode_request(method, content_type, body, scope)
            variables, operation_name = request.variables, request.operation_name
            parsed = await self.services.inspector.inspect_async(request.query)
            operation = parsed.label()
            if refused is not None:
                return await self.services.refuse(ctx, receive, send, refused.status, "mutation", operation,
                                                  refused.reason, refused.missing)
            decision = await authorize_document(principal, parsed, variables, self.services.inspector,
                                                self.services.resolver)
        except GraphQLBusy:
            return await self.services.refuse(ctx, receive, send, 503, "graphql", operation,
                                              "the proxy is validating too many new GraphQL documents; retry shortly",
                                              retry_after=1.0)
        except (GraphQLRejected, ValueError, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, GraphQLRejected | bounded_json.JsonBudgetError) \
                else "request is not valid JSON/UTF-8"
            return await self.services.refuse(ctx, receive, send, 400, "graphql", operation, reason)
        is_write = "mutation" in parsed.operation_types
        if not decision.decision.allowed:
            return await self.services.refuse(ctx, receive, send, 403, "mutation", operation, decision.decision.reason,
                                              decision.decision.missing or "?", decision.targets)
        if is_write and (method != "POST" or content_type != "application/json"):
            # JSON-only mutations: a form or text/plain POST is a "simple" cross-site request without preflight.
            return await self.services.refuse(ctx, receive, send, 403, "mutation", operation,
                                              "mutations must be POSTed as application/json", "POST-json", decision.targets)
        query: str = parsed.query
        if is_write:
            rewritten = stamp_user(self.services.inspector, parsed, variables, principal.user)
            if rewritten is not None:
                query, variables = rewritten
                k8s = kubernetes_tags_of_launch(variables) if not principal.may(Role.admin) else []
                if k8s:
                    # dagster-k8s/config and friends become pod spec (host paths, service accounts, images).
                    return await self.services.refuse(ctx, receive, send, 403, "mutation", operation,
                                                      f"run tags {', '.join(k8s)} configure Kubernetes",
                                                      "admin:kubernetes_tags", decision.targets)
        else:
            await self.services.record_decision(ctx, event="query", decision="allow", operation=operation,
                                                audit=False)
        canonical = json.dumps({"query": query, "variables": variables or {}, "operationName": operation_name})
        headers = upstream_headers(scope, principal, ctx.request_id, ctx.ip, content_type=b"application/json")
        if is_write:
            headers = [(k, v) for k, v in headers if k != b"accept-encoding"]  # read run ids from plain JSON
        captured = await forward_http(
            self.client, self.services.settings.upstream, scope, send, method="POST", query_string=b"", headers=headers,
            content=canonical.encode(), response_headers=[(b"cache-control", b"no-store")], capture=is_write,
            pool=self.pool, idempotent=not is_write)
        if is_write:
            await self.services.record_decision(ctx, event="mutation", decision="allow", operation=operation,
                                                targets=decision.targets, run_id=",".join(run_ids(captured)) or None)
