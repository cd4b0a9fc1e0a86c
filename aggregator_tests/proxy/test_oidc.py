"""OIDC sign-in through the proxy against a real provider (authlib server components) running in the suite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from aggregator.proxy.config import OidcSettings
from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy import oidc_provider
from aggregator_tests.proxy.conftest import RunningProxy, Upstream, free_tcp_port, start_proxy, wait_http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def provider() -> Iterator[oidc_provider.Provider]:
    port = free_tcp_port()
    prov = oidc_provider.Provider(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(oidc_provider.build_app(prov), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_http(f"{prov.issuer}/.well-known/openid-configuration", timeout_s=30)
    yield prov
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def sso_proxy(upstream: Upstream, provider: oidc_provider.Provider,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    db = Path(tmp_path_factory.mktemp("oidc-db")) / "proxy.db"
    oidc = OidcSettings(issuer=provider.issuer, client_id=oidc_provider.CLIENT_ID,
                        client_secret=SecretStr(oidc_provider.CLIENT_SECRET),
                        role_map={"data-platform-admins": "admin", "analysts": "viewer"})
    running = start_proxy(upstream.url, f"sqlite:///{db}", oidc=oidc)
    provider.client.redirect_uris = [f"{running.url}/_auth/oidc/callback"]
    yield running
    running.stop()


def sign_in(proxy: RunningProxy, client: httpx.Client, username: str) -> httpx.Response:
    """Walk the browser's path: proxy -> provider's authorize page -> provider sign-in -> proxy callback."""
    to_provider = client.get(f"{proxy.url}/_auth/oidc/login", params={"next": "/runs"})
    assert to_provider.status_code == 303
    authorize_url = to_provider.headers["location"]
    assert "code_challenge=" in authorize_url and "nonce=" in authorize_url and "state=" in authorize_url
    assert client.get(authorize_url).status_code == 200
    back = client.post(authorize_url, data={"username": username})
    assert back.status_code == 302, back.text
    assert back.headers["location"].startswith(f"{proxy.url}/_auth/oidc/callback?code=")
    return client.get(back.headers["location"])


# authlib's server modules emit their own deprecation notices; they are authlib's to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")
def test_sso_user_gets_the_role_of_their_group(sso_proxy: RunningProxy) -> None:
    with httpx.Client(timeout=30) as client:
        done = sign_in(sso_proxy, client, "olga")
        assert done.status_code == 303 and done.headers["location"] == "/runs", (done.text, [r.reason for r in sso_proxy.audit.query(AuditQuery())])
        me = client.get(f"{sso_proxy.url}/_auth/me").json()
        assert me == {"user": "olga", "role": "admin", "via": "oidc", "scope": None}
        # The callback cannot be replayed: state and code are single-use.
        replay = client.get(done.request.url)
        assert replay.status_code == 403
    with httpx.Client(timeout=30) as client:
        sign_in(sso_proxy, client, "vic")
        assert client.get(f"{sso_proxy.url}/_auth/me").json()["role"] == "viewer"


@pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")
def test_sso_user_without_a_mapped_group_is_refused(sso_proxy: RunningProxy) -> None:
    with httpx.Client(timeout=30) as client:
        done = sign_in(sso_proxy, client, "nobody")
        assert done.status_code == 403 and done.json()["missing_permission"] == "role"
        assert client.get(f"{sso_proxy.url}/_auth/me").status_code == 401
    assert sso_proxy.audit.query(AuditQuery(username="nobody", event="login_oidc"))[0].decision == "deny"


@pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")
def test_callback_from_another_browser_is_refused(sso_proxy: RunningProxy) -> None:
    """Login CSRF: an attacker's own callback URL, opened in the victim's browser, must not sign the victim in."""
    with httpx.Client(timeout=30) as attacker:
        start = attacker.get(f"{sso_proxy.url}/_auth/oidc/login")
        url = start.headers["location"]
        attacker.get(url)
        callback = attacker.post(url, data={"username": "olga"}).headers["location"]
    with httpx.Client(timeout=30) as victim:
        resp = victim.get(callback)
    assert resp.status_code == 403 and resp.json()["missing_permission"] == "oidc-state"


@pytest.mark.parametrize("claim, value", [("aud", ["another-client"]), ("iss", "http://evil.example")])
@pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib.*")
def test_id_token_for_another_audience_or_issuer_is_refused(
    sso_proxy: RunningProxy, provider: oidc_provider.Provider, monkeypatch: pytest.MonkeyPatch, claim: str,
    value: object,
) -> None:
    """A token minted for another client (or by another issuer) must not open a session here."""
    original = oidc_provider.OpenIDExtension.get_client_claims
    monkeypatch.setattr(oidc_provider.OpenIDExtension, "get_client_claims",
                        lambda self, client: {**original(self, client), claim: value})
    with httpx.Client(timeout=30) as client:
        done = sign_in(sso_proxy, client, "olga")
        assert done.status_code == 403
        assert client.get(f"{sso_proxy.url}/_auth/me").status_code == 401
    reason = sso_proxy.audit.query(AuditQuery(event="login_oidc", limit=1))[0].reason or ""
    assert "InvalidClaimError" in reason and claim in reason, reason
