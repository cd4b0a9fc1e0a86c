"""Users, sessions, tokens and audit records in SQLite and PostgreSQL, including migrations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.server import bootstrap_admin, open_store
from aggregator.proxy.storage.audit import AuditLog, AuditQuery, AuditRecord
from aggregator.proxy.storage.db import MIGRATIONS, make_engine, migrate
from aggregator.proxy.storage.store import Store, StoreError
from aggregator_tests.postgres import PgDatabase

PASSWORD = "a long enough password"
OpenDb = Callable[[str], tuple[Store, AuditLog]]


@pytest.fixture
def open_db() -> Iterator[OpenDb]:
    """`open_store` whose engines are disposed after the test: a pooled PostgreSQL connection left to the
    garbage collector outlives its dropped database and warns (ResourceWarning) in whichever test GC runs."""
    opened: list[Store] = []

    def _open(url: str) -> tuple[Store, AuditLog]:
        store, audit = open_store(url)
        opened.append(store)
        return store, audit

    yield _open
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'proxy.db'}"
    pg: PgDatabase = request.getfixturevalue("pg_db")
    return pg.sqlalchemy_url


def test_users_sessions_tokens_round_trip(db_url: str, open_db: OpenDb) -> None:
    _, audit = open_db(db_url)
    store = Store(audit.engine, cache_s=0)  # every lookup reads the database: expiry is checked exactly
    store.add_user("ana", PASSWORD, Role.launcher, ["finance"])
    with pytest.raises(StoreError, match="already exists"):
        store.add_user("ana", PASSWORD, Role.viewer)
    assert store.verify_password("ana", "wrong") is None
    assert store.verify_password("nobody", PASSWORD) is None
    user = store.verify_password("ana", PASSWORD)
    assert user is not None and user.scope == frozenset({"finance"})
    # The hash is argon2id, never the password.
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("select password_hash from proxy_users")).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored

    session = store.create_session(user, absolute_s=60)
    assert store.session_principal(session, idle_s=60).role is Role.launcher  # type: ignore[union-attr]
    assert store.session_principal(session, idle_s=-1) is None  # idle expiry
    store.end_session(session)
    assert store.session_principal(session, idle_s=60) is None

    secret, info = store.create_token("ana", description="ci")
    principal = store.token_principal(secret)
    assert principal is not None and principal.via == "token" and principal.scope == frozenset({"finance"})
    with pytest.raises(StoreError, match="more than its owner"):
        store.create_token("ana", Role.admin)
    store.set_role("ana", Role.viewer)  # demoting the owner demotes the token
    assert store.token_principal(secret).role is Role.viewer  # type: ignore[union-attr]
    store.revoke_token(info.id)
    assert store.token_principal(secret) is None
    store.set_disabled("ana")
    assert store.verify_password("ana", PASSWORD) is None

    audit.record(AuditRecord(event="mutation", username="ana", decision="deny", operation="mutation:launchRun",
                             targets={"jobs": ["sales_job"]}))
    found = audit.query(AuditQuery(username="ana", operation="launchRun"))
    assert [r.targets for r in found] == [{"jobs": ["sales_job"]}]
    assert audit.query(AuditQuery(since=time.time() + 10)) == []


def test_migrations_are_idempotent_and_recorded(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate(engine) == len(MIGRATIONS)
        assert migrate(engine) == len(MIGRATIONS)
        with engine.connect() as conn:
            versions = [r[0] for r in conn.execute(sa.text("select version from proxy_schema_version order by 1"))]
    finally:
        engine.dispose()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_first_admin_is_bootstrapped_once(tmp_path: Path, open_db: OpenDb) -> None:
    store, audit = open_db(f"sqlite:///{tmp_path / 'p.db'}")
    generated = bootstrap_admin(store, audit, environ={}, interactive=True)
    assert generated and store.verify_password("admin", generated) is not None
    assert bootstrap_admin(store, audit, environ={"AGGREGATOR_ADMIN_PASSWORD": "x" * 20}) is None
    assert store.verify_password("admin", "x" * 20) is None  # the variable cannot reset an existing admin
    other, other_audit = open_db(f"sqlite:///{tmp_path / 'q.db'}")
    assert bootstrap_admin(other, other_audit, environ={"AGGREGATOR_ADMIN_USER": "root",
                                                        "AGGREGATOR_ADMIN_PASSWORD": "y" * 20}) is None
    assert other.verify_password("root", "y" * 20).role is Role.admin  # type: ignore[union-attr]


def test_lookup_cache_is_cleared_by_changes_through_the_store(tmp_path: Path, open_db: OpenDb) -> None:
    store, _ = open_db(f"sqlite:///{tmp_path / 'p.db'}")
    store.add_user("bo", PASSWORD, Role.editor)
    secret, info = store.create_token("bo")
    assert store.token_principal(secret) is not None
    assert store.cached_token(secret)[0]  # a second request within cache_s is answered from memory
    store.revoke_token(info.id)
    assert store.token_principal(secret) is None


def test_generated_admin_password_is_never_printed_without_a_terminal(tmp_path: Path, open_db: OpenDb) -> None:
    """Finding (issue 15.4): the generated password went to stdout, which is the container log. Without a
    TTY no password is generated; the operator is told to set AGGREGATOR_ADMIN_PASSWORD."""
    store, audit = open_db(f"sqlite:///{tmp_path / 'p.db'}")
    assert bootstrap_admin(store, audit, environ={}, interactive=False) is None
    assert store.count_users() == 0
    assert bootstrap_admin(store, audit, environ={"AGGREGATOR_ADMIN_PASSWORD": "z" * 20}, interactive=False) is None
    assert store.verify_password("admin", "z" * 20) is not None


def test_two_replicas_bootstrapping_an_empty_postgres_create_one_admin(pg_db: PgDatabase, open_db: OpenDb) -> None:
    """Finding (issue 15.4): two proxy replicas starting on an empty database both saw zero users; one
    crashed on the duplicate key or, with different AGGREGATOR_ADMIN_USER values, two admins appeared."""
    import threading

    stores = [open_db(pg_db.sqlalchemy_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def start(i: int, name: str) -> None:
        barrier.wait()
        try:
            results[i] = bootstrap_admin(*stores[i], environ={"AGGREGATOR_ADMIN_USER": name,
                                                              "AGGREGATOR_ADMIN_PASSWORD": "p" * 20})
        except Exception as exc:  # noqa: BLE001 - the failure is the finding; keep it for the assertion
            results[i] = exc

    threads = [threading.Thread(target=start, args=(i, name)) for i, name in enumerate(("admin", "root"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [None, None]
    users = stores[0][0].list_users()
    assert len(users) == 1 and users[0].role is Role.admin
    for store, _ in stores:
        store.engine.dispose()


def test_narrowing_a_users_scope_narrows_their_tokens(db_url: str, open_db: OpenDb) -> None:
    """Reported by a review: a token made while its owner was unscoped (or scoped wider) kept its old scope
    after an admin narrowed the owner's, so it still queried the pipelines the user had lost."""
    _, audit = open_db(db_url)
    store = Store(audit.engine, cache_s=0)
    store.add_user("ana", PASSWORD, Role.editor)
    everything, _ = store.create_token("ana")
    two, _ = store.create_token("ana", scope=["sales", "shop"])
    store.set_role("ana", Role.editor, ["shop", "crm"])
    assert store.token_principal(everything).scope == frozenset({"shop", "crm"})  # type: ignore[union-attr]
    assert store.token_principal(two).scope == frozenset({"shop"})  # type: ignore[union-attr]
    store.set_role("ana", Role.editor, ["crm"])
    assert store.token_principal(two).scope == frozenset()  # type: ignore[union-attr]  # no pipeline left
    # The token list (CLI, Console) shows what each token can do now, not what it was made with.
    assert {t.scope for t in store.list_tokens("ana")} == {frozenset({"crm"}), frozenset()}
    store.set_role("ana", Role.editor)  # widening the user gives a token no more than it was made with
    assert store.token_principal(two).scope == frozenset({"sales", "shop"})  # type: ignore[union-attr]
    assert store.token_principal(everything).scope is None  # type: ignore[union-attr]


SCOPES = st.one_of(st.none(), st.frozensets(st.sampled_from(["a", "b", "c", "d"]), max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made_with=SCOPES, token_scope=SCOPES, now=SCOPES, role_now=st.sampled_from(list(Role)))
def test_a_token_never_reaches_beyond_its_owners_current_grant(
    tmp_path_factory: pytest.TempPathFactory, made_with: frozenset[str] | None, token_scope: frozenset[str] | None,
    now: frozenset[str] | None, role_now: Role,
) -> None:
    """Differential: whatever the owner's grant was when the token was made, the token's principal allows a
    pipeline only if the owner's current grant and the token's own both do, and never a higher role."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tokens') / 'proxy.db'}"
    store, _audit = open_store(url)
    try:
        store.add_user("u", PASSWORD, Role.admin, None if made_with is None else sorted(made_with))
        secret, _ = store.create_token("u", scope=None if token_scope is None else sorted(token_scope))
        store.set_role("u", role_now, None if now is None else sorted(now), keep_admin=False)
        store.clear_cache()
        principal = store.token_principal(secret)
        assert principal is not None and principal.role <= role_now
        for pipeline in ["a", "b", "c", "d"]:
            allowed = principal.scope is None or pipeline in principal.scope
            grants = [made_with, token_scope, now]  # the token was made within its owner's grant at the time
            assert allowed == all(g is None or pipeline in g for g in grants), (pipeline, principal.scope)
    finally:
        store.close()
