"""Gateway protections on a proxy configured for HTTPS and a CORS allow-list, in front of the real webserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator_tests.proxy.conftest import PASSWORD, RunningProxy, Upstream, bearer, start_proxy

pytestmark = pytest.mark.slow
PUBLIC = "https://dagster.example.com"
PARTNER = "https://partner.example.com"


@pytest.fixture(scope="module")
def tls_proxy(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    db = Path(tmp_path_factory.mktemp("tls-db")) / "proxy.db"
    running = start_proxy(upstream.url, f"sqlite:///{db}", public_origin=PUBLIC, cors_origins=(PARTNER,),
                          max_graphql_bytes=10_000)
    running.store.add_user("viewer", PASSWORD, Role.viewer)
    running.tokens["viewer"], _ = running.store.create_token("viewer")
    yield running
    running.stop()


def test_https_deployment_gets_host_prefixed_secure_cookie_and_hsts(tls_proxy: RunningProxy) -> None:
    resp = httpx.post(f"{tls_proxy.url}/_auth/login", data={"username": "viewer", "password": PASSWORD},
                      headers={"origin": PUBLIC})
    assert resp.status_code == 303
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("__Host-aggregator_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert resp.headers["strict-transport-security"].startswith("max-age=")
    # The configured public origin, not the Host header, is what a same-origin write must carry.
    local = httpx.post(f"{tls_proxy.url}/_auth/login", data={"username": "viewer", "password": PASSWORD},
                       headers={"origin": tls_proxy.url})
    assert local.status_code == 403


def test_security_headers_and_request_id_on_every_response(tls_proxy: RunningProxy) -> None:
    resp = httpx.post(f"{tls_proxy.url}/graphql", json={"query": "{ version }"},
                      headers=bearer(tls_proxy.tokens["viewer"]))
    assert resp.status_code == 200
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["cache-control"] == "no-store"
    assert len(resp.headers["x-request-id"]) == 32
    other = httpx.post(f"{tls_proxy.url}/graphql", json={"query": "{ version }"},
                       headers=bearer(tls_proxy.tokens["viewer"]))
    assert other.headers["x-request-id"] != resp.headers["x-request-id"]


def test_cors_allow_list(tls_proxy: RunningProxy) -> None:
    allowed = httpx.options(f"{tls_proxy.url}/graphql", headers={
        "origin": PARTNER, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == PARTNER
    assert "access-control-allow-credentials" not in allowed.headers  # tokens only, never cookies
    refused = httpx.options(f"{tls_proxy.url}/graphql", headers={
        "origin": "https://evil.example", "access-control-request-method": "POST"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_oversized_graphql_body_is_refused(tls_proxy: RunningProxy) -> None:
    big = "{ version }" + " " * 20_000
    resp = httpx.post(f"{tls_proxy.url}/graphql", json={"query": big}, headers=bearer(tls_proxy.tokens["viewer"]))
    assert resp.status_code == 413
