"""User and API-token administration: the API beside `aggregator users` and `aggregator tokens`.

One code path: the handlers call the same `Store` methods as the CLI, so the password policy, the rule that a
token never exceeds its owner's role, the last-admin guard and "a change ends the user's sessions" hold for
both. Every route needs an unscoped admin (a scoped admin administers pipelines, not people). Each write names
its target in the audit row (`users`, `tokens`); passwords and token secrets appear only in the one answer that
hands them out, never in an audit row, a log line or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr
from starlette.responses import JSONResponse

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.router import ApiRequest, Handler, Route
from aggregator.proxy.context import Services
from aggregator.proxy.policy.rbac import Role
from aggregator.proxy.storage.store import (
    MIN_PASSWORD_LENGTH,
    ConflictError,
    NotFoundError,
    StoreError,
    TokenInfo,
    User,
    generate_password,
)

RoleName = Literal["viewer", "launcher", "editor", "admin"]
# Local and SSO user names (`ana`, `ana.lima@example.com`); never `/`, so a name is one path segment.
USERNAME = r"[A-Za-z0-9_.@+-]{1,200}"
PIPELINE = r"^[A-Za-z0-9_.-]{1,128}$"
TOKEN_ID = r"[0-9a-f]{1,32}"  # noqa: S105 (a pattern for token ids, not a secret)

PipelineName = Annotated[str, Field(pattern=PIPELINE, description="A pipeline name.")]
Scope = list[PipelineName] | None
T = TypeVar("T")
_SCOPE_DESCRIPTION = ("Pipelines the role is limited to; null for all. An empty list is refused: it would be a "
                      "grant to nothing that reads like a grant to everything.")


class UserOut(BaseModel):
    username: str = Field(description="The name the user signs in with.")
    role: RoleName = Field(description="viewer, launcher, editor or admin.")
    scope: list[str] | None = Field(description="Pipelines the role is limited to; null for all.")
    disabled: bool = Field(description="A disabled user cannot sign in; their sessions and tokens are refused.")
    source: str = Field(description="`local` (password kept here) or `oidc` (signs in through the provider).")
    created_at: float | None = Field(description="Unix time the user was added.")


class UserCreate(BaseModel):
    username: str = Field(pattern=f"^{USERNAME}$", description="Letters, digits and `_ . @ + -`, 1-200 characters.")
    role: RoleName = Field(description="viewer, launcher, editor or admin.")
    scope: Scope = Field(None, min_length=1, description=_SCOPE_DESCRIPTION)
    password: SecretStr | None = Field(
        None, description=f"The first password (at least {MIN_PASSWORD_LENGTH} characters); omit it and set "
                          "`generate_password` to have one generated and returned once.")
    generate_password: bool = Field(False, description="Generate the password and return it once in the answer.")


class UserCreated(BaseModel):
    user: UserOut = Field(description="The user as stored.")
    password: str | None = Field(description="The generated password, shown this once; null when you set one.")


class RoleChange(BaseModel):
    role: RoleName = Field(description="The new role; ends the user's sessions.")
    scope: Scope = Field(None, min_length=1, description=_SCOPE_DESCRIPTION)


class DisabledChange(BaseModel):
    disabled: bool = Field(description="true disables (sessions end, tokens are refused); false enables again.")


class PasswordReset(BaseModel):
    password: SecretStr | None = Field(
        None, description=f"The new password (at least {MIN_PASSWORD_LENGTH} characters); omit it and set "
                          "`generate_password` to have one generated.")
    generate_password: bool = Field(False, description="Generate the password and return it once in the answer.")


class PasswordSet(BaseModel):
    username: str = Field(description="Whose password changed; their sessions were ended.")
    password: str | None = Field(description="The generated password, shown this once; null when you set one.")


class TokenOut(BaseModel):
    id: str = Field(description="The token's public id (`agg_<id>_…`), for listing and revoking.")
    username: str = Field(description="The owner; the token never exceeds the owner's current role.")
    role: RoleName = Field(description="The token's role (at most the owner's).")
    scope: list[str] | None = Field(description="Pipelines the token is limited to; null for all.")
    description: str = Field(description="What the token is for.")
    created_at: float = Field(description="Unix time of creation.")
    expires_at: float | None = Field(description="Unix time it stops working; null for never.")
    revoked_at: float | None = Field(description="Unix time it was revoked; null while not revoked.")
    last_used: float | None = Field(description="Unix time of the last use (recorded at most once a minute).")


class TokenQuery(BaseModel):
    username: str | None = Field(None, pattern=f"^{USERNAME}$", description="Only this user's tokens.")


class TokenCreate(BaseModel):
    username: str = Field(pattern=f"^{USERNAME}$", description="The owner; must exist and be enabled.")
    role: RoleName | None = Field(None, description="Default: the owner's role; never above it.")
    scope: Scope = Field(None, min_length=1, description="Pipelines the token is limited to (within the owner's "
                                                         "scope); null for the owner's.")
    expires_in_days: float | None = Field(None, gt=0, le=3650, description="Lifetime in days; null for no expiry.")
    description: str = Field("", max_length=500, description="What the token is for (shown in the list).")


class TokenCreated(BaseModel):
    token: TokenOut = Field(description="The token's record.")
    secret: str = Field(description="`Authorization: Bearer <secret>`: shown this once, stored only as a hash.")


def _user_out(user: User) -> UserOut:
    return UserOut(username=user.username, role=user.role.name, scope=_sorted(user.scope),  # type: ignore[arg-type]
                   disabled=user.disabled, source=user.source, created_at=user.created_at)


def _token_out(info: TokenInfo) -> TokenOut:
    return TokenOut(id=info.id, username=info.username, role=info.role.name,  # type: ignore[arg-type]
                    scope=_sorted(info.scope), description=info.description, created_at=info.created_at,
                    expires_at=info.expires_at, revoked_at=info.revoked_at, last_used=info.last_used)


def _sorted(scope: frozenset[str] | None) -> list[str] | None:
    return None if scope is None else sorted(scope)


def _normal_scope(scope: Scope) -> list[str] | None:
    return None if scope is None else sorted(set(scope))


def _password(given: SecretStr | None, generate: bool) -> tuple[str, bool]:
    if (given is None) == (not generate):
        raise ApiError(400, "send either `password` or `generate_password: true`, not both and not neither")
    return (generate_password(), True) if given is None else (given.get_secret_value(), False)


def _target(req: ApiRequest, **targets: str) -> None:
    """The audit row's targets (who or what the change is about), set before the store call so a refused
    change names its target too."""
    req.ctx.scope.setdefault("state", {})["api_targets"] = {kind: [name] for kind, name in targets.items()}


async def _store_call(services: Services, fn: Callable[[], T]) -> T:
    """A store call in the I/O pool; its refusals in the API's error shape (the message names the rule)."""
    try:
        result: T = await services.run_io(fn)
        return result
    except NotFoundError as exc:
        raise ApiError(404, str(exc)) from None
    except ConflictError as exc:
        raise ApiError(409, str(exc)) from None
    except StoreError as exc:
        raise ApiError(400, str(exc)) from None


def routes(services: Services) -> list[Route]:
    store = services.store

    async def list_users(req: ApiRequest) -> list[UserOut]:
        """Every user with role, scope, state and source (never a password hash)."""
        users: list[User] = await services.run_io(store.list_users)
        return [_user_out(u) for u in users]

    async def create_user(req: ApiRequest) -> JSONResponse:
        """Add a user with a password you set or one generated and returned once (the CLI's policy)."""
        body = req.body_as(UserCreate)
        _target(req, users=body.username)
        password, generated = _password(body.password, body.generate_password)
        scope = _normal_scope(body.scope)
        user = await _store_call(services, lambda: store.add_user(body.username, password, Role[body.role], scope))
        answer = UserCreated(user=_user_out(user), password=password if generated else None)
        return JSONResponse(answer.model_dump(mode="json"), status_code=201, headers={"cache-control": "no-store"})

    async def set_user_role(req: ApiRequest) -> UserOut:
        """Change a user's role and scope; ends their sessions. Refused (409) for the last unscoped admin."""
        name, body = req.params["username"], req.body_as(RoleChange)
        _target(req, users=name)
        scope = _normal_scope(body.scope)
        await _store_call(services, lambda: store.set_role(name, Role[body.role], scope))
        return await _get(name)

    async def set_user_disabled(req: ApiRequest) -> UserOut:
        """Disable (sessions end, tokens refused) or enable a user. Refused (409) for the last unscoped admin."""
        name, body = req.params["username"], req.body_as(DisabledChange)
        _target(req, users=name)
        await _store_call(services, lambda: store.set_disabled(name, body.disabled))
        return await _get(name)

    async def reset_password(req: ApiRequest) -> PasswordSet:
        """Set a local user's password (or generate one, returned once); ends their sessions."""
        name, body = req.params["username"], req.body_as(PasswordReset)
        _target(req, users=name)
        password, generated = _password(body.password, body.generate_password)
        await _store_call(services, lambda: store.set_password(name, password))
        return PasswordSet(username=name, password=password if generated else None)

    async def _get(name: str) -> UserOut:
        user = await services.run_io(store.get_user, name)
        if user is None:
            raise ApiError(404, f"no user {name!r}")
        return _user_out(user)

    async def list_tokens(req: ApiRequest) -> list[TokenOut]:
        """API tokens, oldest first, with owner, role, scope, expiry and last use: never a secret."""
        query = req.query_as(TokenQuery)
        found: list[TokenInfo] = await services.run_io(store.list_tokens, query.username)
        return [_token_out(t) for t in found]

    async def create_token(req: ApiRequest) -> JSONResponse:
        """Create a token for a user; the secret is in this answer only. Its role is at most the owner's."""
        body = req.body_as(TokenCreate)
        _target(req, users=body.username)
        expires = None if body.expires_in_days is None else body.expires_in_days * 86400
        scope = _normal_scope(body.scope)
        secret, info = await _store_call(services, lambda: store.create_token(
            body.username, Role[body.role] if body.role else None, scope, expires, body.description))
        _target(req, users=body.username, tokens=info.id)
        answer = TokenCreated(token=_token_out(info), secret=secret)
        return JSONResponse(answer.model_dump(mode="json"), status_code=201, headers={"cache-control": "no-store"})

    async def revoke_token(req: ApiRequest) -> TokenOut:
        """Revoke a token by its id; it is refused from its next request on."""
        token_id = req.params["token_id"]
        _target(req, tokens=token_id)
        await _store_call(services, lambda: store.revoke_token(token_id))
        found: list[TokenInfo] = await services.run_io(store.list_tokens, None)
        info = next((t for t in found if t.id == token_id), None)
        if info is None:  # revoked a moment ago: only a concurrent database wipe could get here
            raise ApiError(404, f"no token {token_id!r}")
        _target(req, tokens=token_id, users=info.username)
        return _token_out(info)

    user = {"username": USERNAME}
    return [
        _admin("GET", "/_auth/api/users", list_users, "List users", response=list[UserOut]),
        _admin("POST", "/_auth/api/users", create_user, "Create a user", body=UserCreate, response=UserCreated,
               statuses=(201, 409, 415)),
        _admin("PUT", "/_auth/api/users/{username}/role", set_user_role, "Change a user's role and scope",
               body=RoleChange, response=UserOut, statuses=(409, 415), param_patterns=user),
        _admin("PUT", "/_auth/api/users/{username}/disabled", set_user_disabled, "Disable or enable a user",
               body=DisabledChange, response=UserOut, statuses=(409, 415), param_patterns=user),
        _admin("POST", "/_auth/api/users/{username}/password", reset_password, "Reset a user's password",
               body=PasswordReset, response=PasswordSet, statuses=(409, 415), param_patterns=user),
        _admin("GET", "/_auth/api/tokens", list_tokens, "List API tokens", query=TokenQuery,
               response=list[TokenOut]),
        _admin("POST", "/_auth/api/tokens", create_token, "Create an API token", body=TokenCreate,
               response=TokenCreated, statuses=(201, 409, 415)),
        _admin("DELETE", "/_auth/api/tokens/{token_id}", revoke_token, "Revoke an API token", response=TokenOut,
               param_patterns={"token_id": TOKEN_ID}),
    ]


def _admin(method: str, path: str, handler: Handler, summary: str, **options: Any) -> Route:
    """An unscoped-admin route whose requests are audited with event `admin`."""
    return Route(method, path, handler, summary, Role.admin, unscoped=True, event="admin", **options)
