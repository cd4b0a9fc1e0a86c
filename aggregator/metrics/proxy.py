"""Counters the proxy increments: requests by route/method/status, latency, authentication failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

# `*_created` series double the series count and nothing here reads them (process-wide switch).
disable_created_metrics()

# A registry of its own, so tests and several apps in one process never collide on the global one.
PROXY_REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "aggregator_proxy_requests", "Requests answered by the proxy.", ["route", "method", "status"],
    registry=PROXY_REGISTRY,
)
LATENCY = Histogram(
    "aggregator_proxy_request_duration_seconds", "Time to answer a request, including the upstream.", ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=PROXY_REGISTRY,
)
AUTH_FAILURES = Counter(
    "aggregator_proxy_auth_failures", "Requests refused for missing/invalid credentials (401) or permission (403).",
    ["reason"], registry=PROXY_REGISTRY,
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one answered request; `route` is the route template, never the raw path (bounded labels)."""
    REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    LATENCY.labels(route=route).observe(seconds)


def auth_failure(reason: str) -> None:
    """Record a refused request: `unauthenticated`, `forbidden`, `bad_token`, `rate_limited`…"""
    AUTH_FAILURES.labels(reason=reason).inc()


_ROUTES = (
    ("/graphql", "/graphql"), ("/_auth/", "/_auth/*"), ("/api/pipelines/", "/api/pipelines/{name}/trigger"),
    ("/api/logs", "/api/logs"), ("/metrics", "/metrics"), ("/server_info", "/server_info"),
    ("/healthz", "/healthz"),
)


def route_label(rel: str | None) -> str:
    """A bounded route label: raw paths (run ids, asset keys, probes) would make label cardinality unbounded."""
    if rel is None:
        return "outside-prefix"
    for prefix, label in _ROUTES:
        if rel == prefix or rel.startswith(prefix):
            return label
    return "/other"


def observe_http(rel: str | None, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request; 401 and 403 also count as auth failures."""
    observe_request(route_label(rel), method if method in _METHODS else "OTHER", status, seconds)
    if status == 401:
        auth_failure("unauthenticated")
    elif status == 403:
        auth_failure("forbidden")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
