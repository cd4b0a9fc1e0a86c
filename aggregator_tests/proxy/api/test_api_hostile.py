"""Hostile documents against every route that parses one, through the real proxy: each is a 4xx naming the
limit, within a time and memory budget, and the platform answers normally afterwards.

Regression for the 550-byte "billion laughs" spec that `POST /api/pipelines/validate` (a viewer route) turned
into 240 s and 20 GB, and for 50,000-deep nesting answered with a bare 500.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from aggregator.pipelines import bounded_yaml
from aggregator.proxy.policy import bounded_json
from aggregator_tests.hostile_documents import Hostile, json_family, yaml_family
from aggregator_tests.proxy.api.conftest import ApiStack

# Far below what the unbounded loaders cost, with room for a loaded two-core machine.
TIME_BUDGET_S = 5.0
MEMORY_BUDGET = 64 << 20

# (route, method, path, who, body made from the YAML document)
YAML_ROUTES = [
    ("create", "POST", "/api/pipelines", "editor", lambda doc: {"name": "hostile", "yaml": doc}),
    ("update", "PUT", "/api/pipelines/sales", "editor", lambda doc: {"yaml": doc}),
    ("validate", "POST", "/api/pipelines/validate", "viewer", lambda doc: {"name": "hostile", "yaml": doc}),
]
# (route, path, who): the same raw JSON body to each
JSON_ROUTES = [
    ("create", "/api/pipelines", "editor"),
    ("validate", "/api/pipelines/validate", "viewer"),
    ("instantiate", "/api/templates/api_region/instantiate", "editor"),
    ("query", "/api/query", "viewer"),
    ("connection", "/api/connections", "editor"),
    ("trigger", "/api/pipelines/sales/trigger", "launcher"),
    ("graphql", "/graphql", "viewer"),
]
YAMLS, JSONS = yaml_family(), json_family()
FINE = """pipelines:
  - name: fine
    sources:
      - name: orders
        connection: sales_export
        stream: {type: file, path: sales_orders.csv}
"""


def _peak_reset() -> None:
    """Reset this process's peak RSS (VmHWM): the proxy runs in it, so the peak is the request's."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _send(stack: ApiStack, who: str, method: str, path: str, content: bytes) -> tuple[int, dict[str, object], float,
                                                                                       int]:
    """Status, body, seconds and the growth of the proxy's RSS (peak over the request) for one request."""
    process = psutil.Process()
    with stack.client(who) as c:
        before = process.memory_info().rss
        _peak_reset()
        started = time.monotonic()
        r = c.request(method, path, content=content, headers={"content-type": "application/json"})
        elapsed = time.monotonic() - started
        grown = max(_peak(), process.memory_info().rss) - before
    return r.status_code, r.json(), elapsed, grown


@pytest.mark.parametrize("doc", YAMLS, ids=[d.name for d in YAMLS])
@pytest.mark.parametrize(("route", "method", "path", "who", "body"), YAML_ROUTES, ids=[r[0] for r in YAML_ROUTES])
def test_hostile_spec_is_refused_naming_the_limit(api_stack: ApiStack, route: str, method: str, path: str, who: str,
                                                  body: object, doc: Hostile) -> None:
    content = json.dumps(body(doc.text)).encode()  # type: ignore[operator]
    status, answer, elapsed, grown = _send(api_stack, who, method, path, content)
    assert status == 400, answer
    assert doc.limit in str(answer["detail"]) and bounded_yaml.ENV[doc.limit] in str(answer["detail"]), answer
    assert elapsed < TIME_BUDGET_S, f"{route} took {elapsed:.2f}s to refuse {doc.name}"
    assert grown < MEMORY_BUDGET, f"{route} grew the proxy by {grown >> 20} MiB for {doc.name}"


@pytest.mark.parametrize("doc", JSONS, ids=[d.name for d in JSONS])
@pytest.mark.parametrize(("route", "path", "who"), JSON_ROUTES, ids=[r[0] for r in JSON_ROUTES])
def test_hostile_json_body_is_refused(api_stack: ApiStack, route: str, path: str, who: str, doc: Hostile) -> None:
    status, answer, elapsed, grown = _send(api_stack, who, "POST", path, doc.text.encode())
    # 413 when a route's own byte cap comes first (GraphQL 1 MiB, trigger 256 KiB); else the budget's name.
    assert status in (400, 413), answer
    if status == 400 or doc.limit == "max_bytes" and route not in ("graphql", "trigger"):
        assert bounded_json.ENV[doc.limit] in json.dumps(answer), answer
    assert elapsed < TIME_BUDGET_S, f"{route} took {elapsed:.2f}s to refuse {doc.name}"
    assert grown < MEMORY_BUDGET, f"{route} grew the proxy by {grown >> 20} MiB for {doc.name}"


def test_platform_healthy_after_hostile_documents(api_stack: ApiStack) -> None:
    """Runs after the families above (same session stack): every kind of request still works."""
    with api_stack.client("viewer") as c:
        assert c.get("/server_info").status_code == 200
        assert c.get("/api/pipelines").status_code == 200
        ok = c.post("/api/pipelines/validate", json={"name": "fine", "yaml": FINE})
        assert ok.status_code == 200 and ok.json() == {"ok": True, "problems": []}, ok.text
        gql = c.post("/graphql", json={"query": "{ version }"})
        assert gql.status_code == 200 and "errors" not in gql.json(), gql.text
        assert c.post("/api/query", json={"sql": "SELECT COUNT(*) FROM sales_orders"}).json()["rows"] == [[2000]]
    assert not (api_stack.specs_dir / "hostile.yaml").exists()
