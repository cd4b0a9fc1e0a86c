"""OIDC sign-in through the proxy against a real provider (authlib server components) running in the suite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey, RSAKey
from pydantic import SecretStr

from aggregator.proxy.config import OidcSettings
from aggregator.proxy.storage.audit import AuditQuery
from aggregator_tests.proxy import oidc_provider
from aggregator_tests.proxy.conftest import (
    RunningProxy,
    Upstream,
    bearer,
    free_port,
    start_proxy,
    wait_http,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def provider() -> Iterator[oidc_provider.Provider]:
    port = free_port()
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
        # Beside who is asking, /_auth/me says what they may do (the Console's `abilities`).
        assert {k: me[k] for k in ("user", "role", "via", "scope")} == {
            "user": "olga", "role": "admin", "via": "oidc", "scope": None}
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


@pytest.fixture(scope="module")
def jwt_proxy(upstream: Upstream, provider: oidc_provider.Provider,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    db = Path(tmp_path_factory.mktemp("jwt-db")) / "proxy.db"
    oidc = OidcSettings(issuer=provider.issuer, client_id=oidc_provider.CLIENT_ID,
                        client_secret=SecretStr(oidc_provider.CLIENT_SECRET), audience="aggregator",
                        role_map={"data-platform-admins": "admin", "ci-launchers": "launcher", "analysts": "viewer"},
                        scope_claim="pipelines")
    running = start_proxy(upstream.url, f"sqlite:///{db}", oidc=oidc)
    yield running
    running.stop()


def test_machine_clients_use_the_providers_jwt_access_tokens(
    jwt_proxy: RunningProxy, provider: oidc_provider.Provider,
) -> None:
    """Issue 19: CI systems authenticate with the identity provider's JWT access tokens, checked against its
    JWKS, issuer, audience and expiry; groups map to roles and a claim narrows the scope."""
    def me(token: str) -> httpx.Response:
        with httpx.Client(timeout=60) as c:
            return c.get(f"{jwt_proxy.url}/_auth/me", headers=bearer(token))

    launcher = oidc_provider.access_token(provider.issuer, "ci-bot", groups=["ci-launchers"], pipelines="sales")
    answer = me(launcher)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "ci-bot" and answer.json()["role"] == "launcher"
    with httpx.Client(timeout=120) as c:
        # The narrowed scope holds: sales may be triggered, shop not (403 names the permission).
        shop = c.post(f"{jwt_proxy.url}/api/pipelines/shop/trigger", headers=bearer(launcher))
        assert shop.status_code == 403 and "on shop" in shop.json()["missing_permission"], shop.text

    other_key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
    refused = {
        "expired": oidc_provider.access_token(provider.issuer, "ci-bot", groups=["ci-launchers"], expires_in=-120),
        "audience": oidc_provider.access_token(provider.issuer, "ci-bot", groups=["ci-launchers"], audience="other"),
        "issuer": oidc_provider.access_token("http://127.0.0.1:1/evil", "ci-bot", groups=["ci-launchers"]),
        "signature": oidc_provider.access_token(provider.issuer, "ci-bot", groups=["ci-launchers"], key=other_key),
        "no role": oidc_provider.access_token(provider.issuer, "ci-bot", groups=["marketing"]),
        "hmac": jose_jwt.encode({"alg": "HS256"}, {"iss": provider.issuer, "sub": "x", "aud": "aggregator",
                                                   "exp": int(time.time()) + 60, "groups": ["data-platform-admins"]},
                                OctKey.import_key(b"k" * 32)),
    }
    for why, token in refused.items():
        answer = me(token)
        assert answer.status_code == 401, (why, answer.text)
        assert token not in answer.text
