"""`aggregator proxy`, `aggregator users ...`, `aggregator tokens ...`, `aggregator audit`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from aggregator.proxy.audit import AuditQuery
from aggregator.proxy.rbac import Role
from aggregator.proxy.store import StoreError

ROLE = click.Choice([r.name for r in Role])


def _db_url() -> str:
    from aggregator.proxy.config import load_proxy_settings
    from aggregator.settings import load_settings

    return load_proxy_settings("http://unused", load_settings().home).db_url


def _store():  # type: ignore[no-untyped-def]
    from aggregator.proxy.server import open_store

    return open_store(_db_url())


@contextmanager
def _store_errors_as_cli_errors() -> Iterator[None]:
    """A StoreError is the operator's mistake (unknown user, weak password): one line, no traceback."""
    try:
        yield
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _scope(values: tuple[str, ...]) -> list[str] | None:
    return sorted({v.strip() for raw in values for v in raw.split(",") if v.strip()}) or None


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _duration(text: str | None) -> float | None:
    """`90d`, `12h`, `30m` -> seconds."""
    if not text:
        return None
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r}: use a number followed by d, h, m or s (e.g. 90d)") from None


def register_commands(main: click.Group) -> None:
    @main.command()
    @click.option("--upstream", required=True, help="URL of the dagster-webserver, e.g. http://127.0.0.1:3001")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=3000, show_default=True, type=int)
    @click.option("--path-prefix", default="", help="The --path-prefix the webserver was started with.")
    def proxy(upstream: str, host: str, port: int, path_prefix: str) -> None:
        """Run the authenticated proxy alone in front of a running webserver."""
        from aggregator.proxy.config import load_proxy_settings
        from aggregator.proxy.server import serve
        from aggregator.settings import load_settings

        serve(load_proxy_settings(upstream, load_settings().home, path_prefix), host, port)

    @main.group()
    def users() -> None:
        """Local users of the proxy."""

    @users.command("add")
    @click.argument("username")
    @click.option("--role", type=ROLE, required=True)
    @click.option("--scope", multiple=True, help="Limit the role to these asset groups / jobs (repeatable).")
    @click.password_option(help="Prompted for when omitted.")
    def users_add(username: str, role: str, scope: tuple[str, ...], password: str) -> None:
        """Add a local user (password hashed with argon2id)."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.add_user(username, password, Role.parse(role), _scope(scope))
        click.echo(f"added {username} ({role})")

    @users.command("list")
    def users_list() -> None:
        """List users with role, scope and state."""
        store, _ = _store()
        for u in store.list_users():
            scope = ",".join(sorted(u.scope)) if u.scope is not None else "*"
            click.echo(f"{u.username}\t{u.role.name}\tscope={scope}\t{'disabled' if u.disabled else 'enabled'}"
                       f"\t{u.source}")

    @users.command("set-role")
    @click.argument("username")
    @click.argument("role", type=ROLE)
    @click.option("--scope", multiple=True, help="Limit the role to these asset groups / jobs.")
    def users_set_role(username: str, role: str, scope: tuple[str, ...]) -> None:
        """Change a user's role and scope; ends their sessions."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.set_role(username, Role.parse(role), _scope(scope))
        click.echo(f"{username} is now {role}; their sessions were ended")

    @users.command("disable")
    @click.argument("username")
    def users_disable(username: str) -> None:
        """Disable a user: sessions end, tokens are refused."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.set_disabled(username, True)
        click.echo(f"{username} disabled; sessions ended, tokens refused")

    @users.command("set-password")
    @click.argument("username")
    @click.password_option()
    def users_set_password(username: str, password: str) -> None:
        """Set a new password; ends the user's sessions."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.set_password(username, password)
        click.echo(f"password of {username} changed; sessions ended")

    @main.group()
    def tokens() -> None:
        """API tokens for scripts and the GraphQL API (`Authorization: Bearer <token>`)."""

    @tokens.command("create")
    @click.option("--user", "username", required=True, help="Owner; the token never exceeds their role.")
    @click.option("--role", type=ROLE, help="Default: the owner's role.")
    @click.option("--scope", multiple=True, help="Limit to these asset groups / jobs.")
    @click.option("--expires", help="Lifetime, e.g. 90d or 12h (default: no expiry).")
    @click.option("--description", default="")
    def tokens_create(username: str, role: str | None, scope: tuple[str, ...], expires: str | None,
                      description: str) -> None:
        """Create a token; the secret is printed once and stored only as a hash."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            secret, info = store.create_token(username, Role.parse(role) if role else None, _scope(scope),
                                              _duration(expires), description)
        click.echo(f"token {info.id} for {username} ({info.role.name}), expires {_when(info.expires_at)}", err=True)
        click.echo("shown once; store it now:", err=True)
        click.echo(secret)

    @tokens.command("list")
    @click.option("--user", "username")
    def tokens_list(username: str | None) -> None:
        """List tokens (never their secrets)."""
        store, _ = _store()
        now = time.time()
        for t in store.list_tokens(username):
            state = "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at < now else "active")
            scope = ",".join(sorted(t.scope)) if t.scope is not None else "*"
            click.echo(f"{t.id}\t{t.username}\t{t.role.name}\tscope={scope}\t{state}\texpires={_when(t.expires_at)}"
                       f"\tlast_used={_when(t.last_used)}\t{t.description}")

    @tokens.command("revoke")
    @click.argument("token_id")
    def tokens_revoke(token_id: str) -> None:
        """Revoke a token by its id."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.revoke_token(token_id)
        click.echo(f"token {token_id} revoked")

    @main.command()
    @click.option("--user", "username")
    @click.option("--event")
    @click.option("--decision", type=click.Choice(["allow", "deny"]))
    @click.option("--operation", help="Substring, e.g. launchRun.")
    @click.option("--since", type=float, help="Unix time.")
    @click.option("--limit", default=100, show_default=True, type=int)
    def audit(username: str | None, event: str | None, decision: str | None, operation: str | None,
              since: float | None, limit: int) -> None:
        """Query the proxy's audit log (newest first, one JSON object per line)."""
        _, log = _store()
        query = AuditQuery(username=username, event=event, decision=decision, operation=operation, since=since,
                           limit=limit)
        for record in log.query(query):
            click.echo(json.dumps(record.model_dump(), sort_keys=True))
