"""User and token administration through the real proxy (`/_auth/api/users`, `/_auth/api/tokens`).

The shared stack's only enabled unscoped admin is `admin`; these tests add users of their own (`adm_*` names)
and never leave a second unscoped admin enabled, so the last-admin refusals hold whatever runs first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.audit import AuditQuery
from aggregator.proxy.storage.store import TOKEN_PREFIX, User
from aggregator_tests.proxy.api.conftest import ApiStack
from aggregator_tests.proxy.conftest import PASSWORD

NEW_PASSWORD = "a brand new password 42"


@pytest.fixture
def admin(api_stack: ApiStack) -> Iterator[httpx.Client]:
    with api_stack.client("admin") as client:
        yield client


@contextmanager
def _sign_in(api_stack: ApiStack, username: str, password: str) -> Iterator[httpx.Client]:
    """A browser session (cookie only) through the sign-in form."""
    with httpx.Client(base_url=api_stack.url, timeout=120, headers={"Origin": api_stack.url}) as client:
        signed_in = client.post("/_auth/login", data={"username": username, "password": password})
        assert signed_in.status_code == 303, signed_in.text
        yield client


def secret_part(presented: str) -> str:
    """The secret of `agg_<id>_<secret>`. Not `split("_")[-1]`: token_urlsafe may contain "_", and the few
    characters after the last one turn up in any listing or audit dump by chance (a flaky test)."""
    part = presented.removeprefix(TOKEN_PREFIX).partition("_")[2]
    assert len(part) >= 40
    return part


def _me(client: httpx.Client) -> httpx.Response:
    return client.get("/_auth/me", follow_redirects=False)


def test_admin_creates_a_user_with_a_generated_password_who_then_signs_in(api_stack: ApiStack,
                                                                          admin: httpx.Client) -> None:
    created = admin.post("/_auth/api/users", json={"username": "adm_ana", "role": "launcher", "scope": ["sales"],
                                                   "generate_password": True})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["user"] == {"username": "adm_ana", "role": "launcher", "scope": ["sales"], "disabled": False,
                            "source": "local", "created_at": body["user"]["created_at"]}
    password = body["password"]
    assert len(password) >= 12
    with _sign_in(api_stack, "adm_ana", password) as browser:
        me = _me(browser).json()
        assert (me["user"], me["role"], me["scope"]) == ("adm_ana", "launcher", ["sales"])
        # The new user is no admin: the page's controls come from these abilities.
        assert me["abilities"]["create_user"]["allowed"] is False
    listed = admin.get("/_auth/api/users").json()
    assert next(u for u in listed if u["username"] == "adm_ana")["role"] == "launcher"
    assert password not in json.dumps(listed)
    assert all(set(u) == {"username", "role", "scope", "disabled", "source", "created_at"} for u in listed)


@pytest.mark.parametrize(("body", "status", "detail"), [
    ({"username": "adm_short", "role": "viewer", "password": "too short"}, 400, "at least 12 characters"),
    ({"username": "adm_both", "role": "viewer", "password": PASSWORD, "generate_password": True}, 400, "either"),
    ({"username": "adm_none", "role": "viewer"}, 400, "either"),
    ({"username": "viewer", "role": "viewer", "generate_password": True}, 409, "already exists"),
    ({"username": "adm/slash", "role": "viewer", "generate_password": True}, 400, "username"),
    ({"username": "adm_empty", "role": "viewer", "scope": [], "generate_password": True}, 400, "scope"),
    ({"username": "adm_path", "role": "viewer", "scope": ["../x"], "generate_password": True}, 400, "scope.0"),
    ({"username": "adm_role", "role": "root", "generate_password": True}, 400, "role"),
])
def test_create_user_refusals_name_the_rule(admin: httpx.Client, body: dict[str, object], status: int,
                                            detail: str) -> None:
    refused = admin.post("/_auth/api/users", json=body)
    assert refused.status_code == status, refused.text
    assert detail in refused.json()["detail"]
    assert "too short" not in refused.text  # the refused password is not echoed


def test_role_change_and_disable_end_the_session_at_its_next_request(api_stack: ApiStack,
                                                                     admin: httpx.Client) -> None:
    assert admin.post("/_auth/api/users", json={"username": "adm_bo", "role": "editor",
                                                "password": PASSWORD}).status_code == 201
    with _sign_in(api_stack, "adm_bo", PASSWORD) as browser:
        assert _me(browser).status_code == 200
        changed = admin.put("/_auth/api/users/adm_bo/role", json={"role": "viewer", "scope": ["shop"]})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["role"], changed.json()["scope"]) == ("viewer", ["shop"])
        assert _me(browser).status_code == 401  # the session made under the old grant is over
    with _sign_in(api_stack, "adm_bo", PASSWORD) as browser:
        token = admin.post("/_auth/api/tokens", json={"username": "adm_bo"}).json()["secret"]
        disabled = admin.put("/_auth/api/users/adm_bo/disabled", json={"disabled": True})
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True, disabled.text
        assert _me(browser).status_code == 401
        assert httpx.get(f"{api_stack.url}/_auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        refused = browser.post("/_auth/login", data={"username": "adm_bo", "password": PASSWORD})
        assert refused.status_code == 401
    assert admin.put("/_auth/api/users/adm_bo/disabled", json={"disabled": False}).status_code == 200
    assert httpx.get(f"{api_stack.url}/_auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_session_created_just_after_the_user_was_disabled_is_refused(api_stack: ApiStack,
                                                                      admin: httpx.Client) -> None:
    """Regression: a sign-in that verified the password just before the user was disabled inserted its
    session just after the disable had ended the others, and that session lived its 12 hours: sessions
    were checked against their own row only. Now the user's row (enabled, same grant) is checked too."""
    assert admin.post("/_auth/api/users", json={"username": "adm_race", "role": "editor",
                                                "password": PASSWORD}).status_code == 201
    assert admin.put("/_auth/api/users/adm_race/disabled", json={"disabled": True}).status_code == 200
    store = api_stack.proxy.store
    # What the racing sign-in holds: the user as verify_password returned it, before the disable.
    late = store.create_session(User("adm_race", Role.editor, None, False, "local"), 3600)
    cookie = {"Cookie": f"{api_stack.proxy.settings.cookie_name}={late}"}
    assert httpx.get(f"{api_stack.url}/_auth/me", headers=cookie).status_code == 401
    # The same for a session stamped with a grant the user no longer has.
    assert admin.put("/_auth/api/users/adm_race/disabled", json={"disabled": False}).status_code == 200
    assert admin.put("/_auth/api/users/adm_race/role", json={"role": "viewer"}).status_code == 200
    stale = store.create_session(User("adm_race", Role.editor, None, False, "local"), 3600)
    assert httpx.get(f"{api_stack.url}/_auth/me", headers={
        "Cookie": f"{api_stack.proxy.settings.cookie_name}={stale}"}).status_code == 401


def test_reset_password_generated_once_and_not_for_sso_users(api_stack: ApiStack, admin: httpx.Client) -> None:
    assert admin.post("/_auth/api/users", json={"username": "adm_cy", "role": "viewer",
                                                "password": PASSWORD}).status_code == 201
    reset = admin.post("/_auth/api/users/adm_cy/password", json={"generate_password": True})
    assert reset.status_code == 200, reset.text
    password = reset.json()["password"]
    assert httpx.post(f"{api_stack.url}/_auth/login", headers={"Origin": api_stack.url},
                      data={"username": "adm_cy", "password": PASSWORD}).status_code == 401
    with _sign_in(api_stack, "adm_cy", password):
        pass
    chosen = admin.post("/_auth/api/users/adm_cy/password", json={"password": {"x": 1}})
    assert chosen.status_code == 400
    chosen = admin.post("/_auth/api/users/adm_cy/password", json={"password": NEW_PASSWORD})
    assert chosen.status_code == 200 and chosen.json()["password"] is None
    api_stack.proxy.store.add_user("adm_sso@example.com", None, Role.viewer, source="oidc")
    sso = admin.post("/_auth/api/users/adm_sso@example.com/password", json={"generate_password": True})
    assert sso.status_code == 409 and "oidc" in sso.json()["detail"], sso.text
    missing = admin.post("/_auth/api/users/adm_nobody/password", json={"generate_password": True})
    assert missing.status_code == 404


def test_tokens_secret_once_role_capped_and_revoked(api_stack: ApiStack, admin: httpx.Client) -> None:
    assert admin.post("/_auth/api/users", json={"username": "adm_ci", "role": "launcher", "scope": ["sales"],
                                                "password": PASSWORD}).status_code == 201
    above = admin.post("/_auth/api/tokens", json={"username": "adm_ci", "role": "editor"})
    assert above.status_code == 400 and "owner's role (launcher)" in above.json()["detail"], above.text
    assert admin.post("/_auth/api/tokens", json={"username": "adm_nobody"}).status_code == 404
    created = admin.post("/_auth/api/tokens", json={"username": "adm_ci", "role": "viewer", "expires_in_days": 30,
                                                    "description": "nightly"})
    assert created.status_code == 201, created.text
    secret, info = created.json()["secret"], created.json()["token"]
    assert (info["username"], info["role"], info["scope"], info["description"]) == ("adm_ci", "viewer", ["sales"],
                                                                                   "nightly")
    assert info["expires_at"] - info["created_at"] == pytest.approx(30 * 86400, abs=5)
    with httpx.Client(base_url=api_stack.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60) as ci:
        assert ci.get("/_auth/me").json()["role"] == "viewer"
        listed = admin.get("/_auth/api/tokens", params={"username": "adm_ci"})
        assert [t["id"] for t in listed.json()] == [info["id"]]
        assert listed.json()[0]["last_used"] is not None
        assert secret_part(secret) not in listed.text
        revoked = admin.delete(f"/_auth/api/tokens/{info['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None, revoked.text
        assert ci.get("/_auth/me").status_code == 401
    assert admin.delete(f"/_auth/api/tokens/{info['id']}").status_code == 404
    assert admin.put("/_auth/api/users/adm_ci/disabled", json={"disabled": True}).status_code == 200
    disabled = admin.post("/_auth/api/tokens", json={"username": "adm_ci"})
    assert disabled.status_code == 409 and "disabled" in disabled.json()["detail"]


ROUTES = [("GET", "/_auth/api/users", None), ("POST", "/_auth/api/users",
                                               {"username": "adm_x", "role": "viewer", "generate_password": True}),
          ("PUT", "/_auth/api/users/viewer/role", {"role": "admin"}),
          ("PUT", "/_auth/api/users/viewer/disabled", {"disabled": True}),
          ("POST", "/_auth/api/users/viewer/password", {"generate_password": True}),
          ("GET", "/_auth/api/tokens", None), ("POST", "/_auth/api/tokens", {"username": "viewer"}),
          ("DELETE", "/_auth/api/tokens/0123456789ab", None)]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_non_admins_and_scoped_admins_are_refused_naming_the_permission(api_stack: ApiStack, method: str,
                                                                         path: str, body: object) -> None:
    store = api_stack.proxy.store
    if store.get_user("adm_scoped_admin") is None:
        store.add_user("adm_scoped_admin", PASSWORD, Role.admin, scope=["sales"])
        api_stack.tokens["adm_scoped_admin"], _ = store.create_token("adm_scoped_admin")
    operation = next(r.operation_id for r in api_stack.proxy.app.api.routes
                     if r.method == method and r.pattern.match(path))
    for who, missing in (("viewer", f"admin:{operation}"), ("editor", f"admin:{operation}"),
                         ("adm_scoped_admin", f"admin:{operation} (all pipelines)")):
        with api_stack.client(who) as client:
            refused = client.request(method, path, json=body)
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["missing_permission"] == missing, (who, refused.text)
    assert store.get_user("adm_x") is None
    viewer = store.get_user("viewer")
    assert viewer is not None and viewer.role == Role.viewer and not viewer.disabled


def test_the_last_unscoped_admin_cannot_be_demoted_scoped_or_disabled(api_stack: ApiStack,
                                                                      admin: httpx.Client) -> None:
    for path, body in (("/_auth/api/users/admin/role", {"role": "editor"}),
                       ("/_auth/api/users/admin/role", {"role": "admin", "scope": ["sales"]}),
                       ("/_auth/api/users/admin/disabled", {"disabled": True})):
        refused = admin.put(path, json=body)
        assert refused.status_code == 409, refused.text
        assert "last enabled admin with an unscoped grant" in refused.json()["detail"]
    assert admin.get("/_auth/me").json()["role"] == "admin"
    # With a second unscoped admin the first may step down; the second then is the last one.
    assert admin.post("/_auth/api/users", json={"username": "adm_second", "role": "admin",
                                                "password": PASSWORD}).status_code == 201
    try:
        assert admin.put("/_auth/api/users/adm_second/role", json={"role": "admin", "scope": ["sales"]}
                         ).status_code == 200
        assert admin.put("/_auth/api/users/admin/disabled", json={"disabled": True}).status_code == 409
    finally:
        api_stack.proxy.store.set_disabled("adm_second")


def test_cookie_sessions_need_our_origin_for_admin_writes(api_stack: ApiStack) -> None:
    with _sign_in(api_stack, "admin", PASSWORD) as browser:
        cookie = f"{api_stack.proxy.settings.cookie_name}={browser.cookies[api_stack.proxy.settings.cookie_name]}"
        for origin in ({"Origin": "https://evil.example"}, {}):  # a foreign page, and no Origin at all
            refused = httpx.post(f"{api_stack.url}/_auth/api/users", headers={"Cookie": cookie, **origin}, json={
                "username": "adm_csrf", "role": "admin", "generate_password": True})
            assert refused.status_code == 403, refused.text
            assert refused.json()["missing_permission"] == "same-origin"
        assert api_stack.proxy.store.get_user("adm_csrf") is None
        allowed = browser.post("/_auth/api/users", json={"username": "adm_csrf", "role": "viewer",
                                                         "generate_password": True})
        assert allowed.status_code == 201, allowed.text


def test_every_change_is_audited_with_actor_and_target_and_no_secret(api_stack: ApiStack, admin: httpx.Client,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    created = admin.post("/_auth/api/users", json={"username": "adm_audit", "role": "viewer",
                                                   "password": NEW_PASSWORD})
    assert created.status_code == 201
    generated = admin.post("/_auth/api/users/adm_audit/password", json={"generate_password": True}).json()
    token = admin.post("/_auth/api/tokens", json={"username": "adm_audit"}).json()
    admin.delete(f"/_auth/api/tokens/{token['token']['id']}")
    admin.put("/_auth/api/users/adm_audit/role", json={"role": "launcher"})
    admin.put("/_auth/api/users/admin/disabled", json={"disabled": True})  # refused: the last admin
    rows = api_stack.proxy.audit.query(AuditQuery(event="admin", username="admin", limit=500))
    mine = [r for r in rows if "adm_audit" in r.targets.get("users", []) or r.targets.get("users") == ["admin"]]
    seen = {(r.operation.split(" ")[0] if r.operation else "", r.decision) for r in mine}
    assert {("api:create_user", "allow"), ("api:reset_password", "allow"), ("api:create_token", "allow"),
            ("api:revoke_token", "allow"), ("api:set_user_role", "allow"),
            ("api:set_user_disabled", "deny")} <= seen, seen
    assert any(r.targets.get("tokens") == [token["token"]["id"]] for r in mine)
    everything = json.dumps([r.model_dump() for r in api_stack.proxy.audit.query(AuditQuery(limit=10_000))])
    secrets = [NEW_PASSWORD, generated["password"], token["secret"], secret_part(token["secret"])]
    for secret in secrets:
        assert secret not in everything
        assert secret not in caplog.text
    assert "decision=allow event=admin user=admin" in caplog.text  # the log was captured at all


def test_openapi_documents_the_admin_routes_with_their_role(api_stack: ApiStack) -> None:
    doc = httpx.get(f"{api_stack.url}/api/openapi.json").json()
    ops = {op["operationId"]: op for path in doc["paths"].values() for op in path.values() if "operationId" in op}
    for name in ("list_users", "create_user", "set_user_role", "set_user_disabled", "reset_password",
                 "list_tokens", "create_token", "revoke_token"):
        assert ops[name]["x-role"] == "admin"
        assert "unscoped grant" in ops[name]["description"]
    password = doc["components"]["schemas"]["UserCreate"]["properties"]["password"]
    assert "writeOnly" in json.dumps(password)
