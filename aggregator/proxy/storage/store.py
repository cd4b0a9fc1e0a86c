"""Users, sessions and API tokens in SQL. Synchronous: the ASGI side calls it through a thread pool."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from aggregator.proxy.policy.rbac import Principal, Role
from aggregator.proxy.storage import db

log = logging.getLogger(__name__)

TOKEN_PREFIX = "agg_"  # noqa: S105 (a public prefix that makes leaked tokens greppable, not a secret)
BOOTSTRAP_LOCK_KEY = 0x61676772  # "aggr": the advisory lock serializing first-admin creation across replicas
ADMINS_LOCK_KEY = 0x61676773  # serializes demoting/disabling admins, so two at once cannot remove the last one
MIN_PASSWORD_LENGTH = 12
# argon2id, memory-hard. Defaults of argon2-cffi (64 MiB, t=3) follow RFC 9106's second recommendation.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a login for an unknown name costs as much as a real
    one. Made on first use: an argon2 hash costs ~0.3-1 s, which every CLI call importing this module paid."""
    return _hasher.hash("not a password " + secrets.token_hex(8))


class StoreError(ValueError):
    """A user or token operation that cannot be done as asked (unknown user, bad role, ...)."""


class NotFoundError(StoreError):
    """The named user or token does not exist: the API answers 404."""


class ConflictError(StoreError):
    """The change collides with the current state (a name taken, the last admin): the API answers 409."""


def generate_password() -> str:
    """144 random bits, URL-safe: what `--generate-password` and the API's generated passwords are."""
    return secrets.token_urlsafe(18)


def check_password(password: str) -> None:
    """The one password policy, for the CLI, the API and the first admin."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _scope_json(scope: list[str] | frozenset[str] | None) -> str | None:
    return None if scope is None else json.dumps(sorted(set(scope)))


def narrowest(*scopes: frozenset[str] | None) -> frozenset[str] | None:
    """The pipelines every one of `scopes` allows (None: unscoped, every pipeline)."""
    bounded = [scope for scope in scopes if scope is not None]
    return frozenset.intersection(*bounded) if bounded else None


def _scope(raw: str | None) -> frozenset[str] | None:
    return None if raw is None else frozenset(json.loads(raw))


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    scope: frozenset[str] | None
    disabled: bool
    source: str
    created_at: float | None = None


def _user(row: sa.Row[Any]) -> User:
    return User(row.username, Role.parse(row.role), _scope(row.scope), bool(row.disabled), row.source, row.created_at)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    username: str
    role: Role
    scope: frozenset[str] | None
    description: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used: float | None


class Store:
    """`cache_s`: how long a looked-up token or session is reused without a database read. Changes made
    through this Store (revoke, logout, role change, disable) clear it at once; changes made by another
    process (the CLI) take effect within `cache_s`. Without it the lookup is most of the proxy's cost."""

    def __init__(self, engine: Engine, cache_s: float = 2.0) -> None:
        self.engine = engine
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, Principal | None]] = {}


    def close(self) -> None:
        """Close the pooled connections (the audit log shares the engine). Left to the garbage collector, a
        PostgreSQL connection outlives its database in tests and warns (ResourceWarning) wherever GC runs."""
        self.engine.dispose()
    def _cached(self, key: str) -> tuple[bool, Principal | None]:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            return True, hit[1]
        return False, None

    def _remember(self, key: str, principal: Principal | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), principal)

    def cached_token(self, presented: str) -> tuple[bool, Principal | None]:
        """A cache hit answers on the event loop, without a thread hop or a database read."""
        return self._cached("t:" + _sha256(presented))

    def cached_session(self, token: str) -> tuple[bool, Principal | None]:
        return self._cached("s:" + _sha256(token))

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- users -------------------------------------------------------------------------------------------
    def add_user(
        self, username: str, password: str | None, role: Role, scope: list[str] | None = None, source: str = "local"
    ) -> User:
        if not username or len(username) > 200:
            raise StoreError("username must be 1-200 characters")
        if password is not None:
            check_password(password)
        now = time.time()
        try:
            with self.engine.begin() as conn:
                if conn.execute(sa.select(db.users.c.username).where(db.users.c.username == username)).first():
                    raise ConflictError(f"user {username!r} already exists; use set-role to change it")
                conn.execute(db.users.insert().values(
                    username=username, password_hash=None if password is None else _hasher.hash(password),
                    role=role.name, scope=_scope_json(scope), disabled=False, source=source, created_at=now,
                ))
        except sa.exc.IntegrityError:  # created by someone else between the check and the insert
            raise ConflictError(f"user {username!r} already exists; use set-role to change it") from None
        return User(username, role, None if scope is None else frozenset(scope), False, source, now)

    def create_first_admin(self, username: str, password: str) -> bool:
        """Create `username` as admin only if there are no users at all; False when someone else did first.

        Safe with several proxy replicas starting on an empty database: on PostgreSQL the check and the insert
        run under a transaction-scoped advisory lock, so exactly one replica creates the admin and the others
        see it; elsewhere the primary key turns a lost race into "already there"."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise StoreError(f"AGGREGATOR_ADMIN_PASSWORD must be at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = _hasher.hash(password)  # outside the lock: it takes about a second
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOTSTRAP_LOCK_KEY})
                if conn.execute(sa.select(sa.func.count()).select_from(db.users)).scalar():
                    return False
                conn.execute(db.users.insert().values(
                    username=username, password_hash=password_hash, role=Role.admin.name, scope=None,
                    disabled=False, source="local", created_at=time.time()))
        except sa.exc.IntegrityError:
            return False
        return True

    def get_user(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.users).where(db.users.c.username == username)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[User]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.users).order_by(db.users.c.username)).all()
        return [_user(r) for r in rows]

    def count_users(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(db.users)).scalar() or 0)

    def _update_user(self, username: str, keep_admin: bool = False, **values: object) -> None:
        """Update the user's row and end their sessions in one transaction. With `keep_admin` the change is
        refused (ConflictError, rolled back) when it leaves no enabled unscoped admin: checked after the
        update, under a PostgreSQL advisory lock (SQLite holds its write lock from the update on), so two
        admins demoting each other at once cannot both succeed."""
        self.clear_cache()
        with self.engine.begin() as conn:
            if keep_admin and conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMINS_LOCK_KEY})
            was_admin = keep_admin and self._is_admin(conn, username)
            result = conn.execute(db.users.update().where(db.users.c.username == username).values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"no user {username!r}; `aggregator users list` shows who exists")
            if was_admin and not self._is_admin(conn):
                raise ConflictError(f"{username} is the last enabled admin with an unscoped grant; make another "
                                    "user an unscoped admin first, or nobody could manage users any more")
            # A role change or a disable takes effect now, not when the session would have expired.
            conn.execute(db.sessions.update().where(db.sessions.c.username == username,
                                                    db.sessions.c.ended_at.is_(None)).values(ended_at=time.time()))

    @staticmethod
    def _is_admin(conn: sa.Connection, username: str | None = None) -> bool:
        """Is `username` (or anyone, when None) an enabled admin with an unscoped grant?"""
        u = db.users.c
        query = sa.select(sa.func.count()).select_from(db.users).where(
            u.role == Role.admin.name, u.scope.is_(None), u.disabled == sa.false())
        if username is not None:
            query = query.where(u.username == username)
        return bool(conn.execute(query).scalar())

    def set_role(self, username: str, role: Role, scope: list[str] | None = None, keep_admin: bool = True) -> None:
        """`keep_admin=False` only where an outside authority decides the role (an OIDC sign-in)."""
        self._update_user(username, keep_admin, role=role.name, scope=_scope_json(scope))

    def set_disabled(self, username: str, disabled: bool = True) -> None:
        self._update_user(username, disabled, disabled=disabled)

    def set_password(self, username: str, password: str) -> None:
        check_password(password)
        user = self.get_user(username)
        if user is not None and user.source != "local":
            # A password would open a second way in to an account its identity provider governs.
            raise ConflictError(f"{username} signs in through {user.source}; their password is not kept here")
        self._update_user(username, password_hash=_hasher.hash(password))

    def verify_password(self, username: str, password: str) -> User | None:
        """The user if the password matches and the account is enabled; same cost either way."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.users).where(db.users.c.username == username)).first()
        stored = row.password_hash if row is not None and row.password_hash else _dummy_hash()
        try:
            ok: bool = _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None or not row.password_hash or row.disabled:
            return None
        if _hasher.check_needs_rehash(stored):
            with self.engine.begin() as conn:
                conn.execute(db.users.update().where(db.users.c.username == username)
                             .values(password_hash=_hasher.hash(password)))
        return User(row.username, Role.parse(row.role), _scope(row.scope), False, row.source)

    # -- sessions ----------------------------------------------------------------------------------------
    def create_session(self, user: User, absolute_s: float, via: str = "session") -> str:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(db.sessions.insert().values(
                id_hash=_sha256(token), username=user.username, role=user.role.name,
                scope=_scope_json(user.scope), via=via, created_at=now, last_seen=now,
                expires_at=now + absolute_s,
            ))
        return token

    def session_principal(self, token: str, idle_s: float) -> Principal | None:
        id_hash = _sha256(token)
        hit, cached = self._cached("s:" + id_hash)
        if hit:
            return cached
        principal = self._session_principal(id_hash, idle_s)
        self._remember("s:" + id_hash, principal)
        return principal

    def _session_principal(self, id_hash: str, idle_s: float) -> Principal | None:
        now = time.time()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(db.sessions, db.users.c.disabled, db.users.c.role.label("user_role"),
                          db.users.c.scope.label("user_scope"))
                .join(db.users, db.users.c.username == db.sessions.c.username)
                .where(db.sessions.c.id_hash == id_hash)
            ).first()
        if row is None or row.ended_at is not None or now > row.expires_at or now - row.last_seen > idle_s:
            return None
        # Disabling a user or changing their grant ends their sessions, but a sign-in that verified the
        # password just before the change inserts its session just after it: checked against the user's
        # row here too, such a session is refused at its first request instead of living 12 hours.
        if row.disabled or row.user_role != row.role or _scope(row.user_scope) != _scope(row.scope):
            return None
        if now - row.last_seen > 30:
            # Throttled: one write per half minute per session, not one per request.
            with self.engine.begin() as conn:
                conn.execute(db.sessions.update().where(db.sessions.c.id_hash == id_hash).values(last_seen=now))
        return Principal(row.username, Role.parse(row.role), _scope(row.scope), via=row.via, session_id=id_hash[:12])

    def end_session(self, token: str) -> bool:
        self.clear_cache()
        with self.engine.begin() as conn:
            result = conn.execute(db.sessions.update().where(
                db.sessions.c.id_hash == _sha256(token), db.sessions.c.ended_at.is_(None)
            ).values(ended_at=time.time()))
        return result.rowcount > 0

    # -- API tokens --------------------------------------------------------------------------------------
    def create_token(
        self, username: str, role: Role | None = None, scope: list[str] | None = None,
        expires_in_s: float | None = None, description: str = "",
    ) -> tuple[str, TokenInfo]:
        """Returns the secret (shown once, stored only as a hash) and the token's record."""
        user = self.get_user(username)
        if user is None:
            raise NotFoundError(f"no user {username!r} to own the token; create the user first")
        if user.disabled:
            raise ConflictError(f"{username} is disabled; enable the user before giving them a token")
        role = role or user.role
        if role > user.role:
            raise StoreError(f"a token cannot have more than its owner's role ({user.role.name})")
        if user.scope is not None:
            # A token may narrow its owner's scope, never widen it.
            scope = sorted(user.scope & set(scope)) if scope is not None else sorted(user.scope)
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        info = TokenInfo(token_id, username, role, None if scope is None else frozenset(scope), description, now,
                         None if expires_in_s is None else now + expires_in_s, None, None)
        with self.engine.begin() as conn:
            conn.execute(db.tokens.insert().values(
                id=token_id, secret_hash=_sha256(secret), username=username, role=role.name,
                scope=_scope_json(scope), description=description, created_at=now, expires_at=info.expires_at,
            ))
        return f"{TOKEN_PREFIX}{token_id}_{secret}", info

    def token_principal(self, presented: str) -> Principal | None:
        if not presented.startswith(TOKEN_PREFIX) or presented.count("_") < 2:
            return None
        key = "t:" + _sha256(presented)
        hit, cached = self._cached(key)
        if hit:
            return cached
        principal = self._token_principal(presented)
        self._remember(key, principal)
        return principal

    def _token_principal(self, presented: str) -> Principal | None:
        token_id, _, secret = presented.removeprefix(TOKEN_PREFIX).partition("_")
        now = time.time()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(db.tokens, db.users.c.disabled, db.users.c.role.label("user_role"),
                          db.users.c.scope.label("user_scope"))
                .join(db.users, db.users.c.username == db.tokens.c.username)
                .where(db.tokens.c.id == token_id)
            ).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
            return None
        if row.revoked_at is not None or row.disabled or (row.expires_at is not None and now > row.expires_at):
            return None
        # Capped by the owner's current grant: demoting a user demotes their tokens, and narrowing the user's
        # scope narrows their tokens' (a token made while the user was unscoped would otherwise keep every
        # pipeline the user lost).
        role = min(Role.parse(row.role), Role.parse(row.user_role))
        scope = narrowest(_scope(row.scope), _scope(row.user_scope))
        if row.last_used is None or now - row.last_used > 60:
            with self.engine.begin() as conn:
                conn.execute(db.tokens.update().where(db.tokens.c.id == token_id).values(last_used=now))
        return Principal(row.username, role, scope, via="token", token_id=token_id)

    def list_tokens(self, username: str | None = None) -> list[TokenInfo]:
        """Tokens with the role and scope they have now: capped by their owner's current grant, as
        `token_principal` applies them (an admin reviewing tokens sees what each can do, not what it was made
        with)."""
        query = (sa.select(db.tokens, db.users.c.role.label("user_role"), db.users.c.scope.label("user_scope"))
                 .join(db.users, db.users.c.username == db.tokens.c.username).order_by(db.tokens.c.created_at))
        if username:
            query = query.where(db.tokens.c.username == username)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [TokenInfo(r.id, r.username, min(Role.parse(r.role), Role.parse(r.user_role)),
                          narrowest(_scope(r.scope), _scope(r.user_scope)), r.description, r.created_at,
                          r.expires_at, r.revoked_at, r.last_used) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        self.clear_cache()
        with self.engine.begin() as conn:
            result = conn.execute(db.tokens.update().where(db.tokens.c.id == token_id, db.tokens.c.revoked_at.is_(None))
                                  .values(revoked_at=time.time()))
        if result.rowcount == 0:
            raise NotFoundError(f"no active token {token_id!r}; `aggregator tokens list` shows them")
