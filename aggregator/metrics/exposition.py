"""The /metrics body: Dagster-derived metrics plus the proxy's counters, in Prometheus text format."""

from __future__ import annotations

import dagster as dg
from prometheus_client import CollectorRegistry, generate_latest

from aggregator.metrics.dagster_collector import DagsterCollector
from aggregator.metrics.proxy import PROXY_REGISTRY

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exposition:
    """One collector per process: its cursors make each scrape read only events since the last one."""

    def __init__(self, instance: dg.DagsterInstance, include_proxy: bool = True) -> None:
        self.collector = DagsterCollector(instance)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.include_proxy = include_proxy

    def render(self) -> bytes:
        body = generate_latest(self.registry)
        if self.include_proxy:
            body += generate_latest(PROXY_REGISTRY)
        return body
