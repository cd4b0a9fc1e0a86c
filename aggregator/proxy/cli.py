"""`aggregator proxy`, `aggregator users ...`, `aggregator tokens ...`, `aggregator audit`."""

from __future__ import annotations

import getpass
import json
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from aggregator.proxy.policy.rbac import Role

ROLE = click.Choice([r.name for r in Role])


def _db_url() -> str:
    from aggregator.proxy.config import proxy_db_url
    from aggregator.settings import load_settings

    return proxy_db_url(load_settings().home)


def _store():  # type: ignore[no-untyped-def]
    from aggregator.proxy.server import open_store

    return open_store(_db_url())


@contextmanager
def _store_errors_as_cli_errors() -> Iterator[None]:
    """A StoreError is the operator's mistake (unknown user, weak password): one line, no traceback."""
    # Imported here, like everything heavy: `aggregator --help` must not pay for SQLAlchemy and argon2.
    from aggregator.proxy.storage.store import StoreError

    try:
        yield
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _known_pipelines() -> list[str] | None:
    """Pipeline names of the spec directory, or None when it cannot be loaded (the warning is then skipped)."""
    try:
        from aggregator.pipelines.load import load_specs
        from aggregator.settings import load_settings

        return sorted(p.name for p, _, _ in load_specs(load_settings().pipelines_dir).pipelines)
    except Exception:  # noqa: BLE001 - a broken spec directory must not block user administration
        return None


def _scope(values: tuple[str, ...]) -> list[str] | None:
    scope = sorted({v.strip() for raw in values for v in raw.split(",") if v.strip()}) or None
    if scope:
        known = _known_pipelines()
        unknown = [s for s in scope if known is not None and s not in known]
        if unknown:
            # A warning, not an error: the grant may name a pipeline that is about to be deployed.
            click.echo(f"warning: no pipeline named {', '.join(unknown)}; known pipelines: "
                       f"{', '.join(known or []) or '(none)'}", err=True)
    return scope


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _password(password_stdin: bool, generate: bool, confirm: bool = True) -> tuple[str, bool]:
    """The password from stdin, generated, or prompted for (hidden, twice). True when generated."""
    if password_stdin and generate:
        raise click.UsageError("use either --password-stdin or --generate-password")
    if password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: no password on standard input")
        return line, False
    if generate:
        from aggregator.proxy.storage.store import generate_password

        return generate_password(), True
    try:
        with warnings.catch_warnings():
            # Without a terminal getpass warns "Can not control echo" and click prints only "Aborted!".
            warnings.simplefilter("ignore", getpass.GetPassWarning)
            return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm)), False
    except click.Abort:
        if sys.stdin.isatty():
            raise
        raise click.UsageError("no password given and no terminal to prompt on: pass it with --password-stdin "
                               "(`printf %s \"$PW\" | aggregator users add …`) or use --generate-password") from None


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
        try:
            from aggregator.proxy.config import load_proxy_settings
            from aggregator.proxy.server import serve
            from aggregator.settings import load_settings

            serve(load_proxy_settings(upstream, load_settings().home, path_prefix), host, port)
        except KeyboardInterrupt:
            # Ctrl-C (or `aggregator dev` stopping) while still starting: a stop, not click's "Aborted!".
            sys.exit(130)

    @main.group()
    def users() -> None:
        """Local users of the proxy."""

    @users.command("add")
    @click.argument("username")
    @click.option("--role", type=ROLE, required=True)
    @click.option("--scope", multiple=True, help="Limit the role to these pipelines (repeatable).")
    @click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
    @click.option("--generate-password", is_flag=True, help="Generate a password and print it once.")
    def users_add(username: str, role: str, scope: tuple[str, ...], password_stdin: bool,
                  generate_password: bool) -> None:
        """Add a local user (password hashed with argon2id).

        Prompts for the password (hidden, asked twice) unless --password-stdin or --generate-password."""
        store, _ = _store()
        password, generated = _password(password_stdin, generate_password)
        with _store_errors_as_cli_errors():
            store.add_user(username, password, Role.parse(role), _scope(scope))
        click.echo(f"added {username} ({role})", err=generated)
        if generated:
            click.echo("password (shown once):", err=True)
            click.echo(password)

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

    @users.command("enable")
    @click.argument("username")
    def users_enable(username: str) -> None:
        """Enable a disabled user again (they sign in anew; their unrevoked tokens work again)."""
        store, _ = _store()
        with _store_errors_as_cli_errors():
            store.set_disabled(username, False)
        click.echo(f"{username} enabled")

    @users.command("set-password")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
    @click.option("--generate-password", is_flag=True, help="Generate a password and print it once.")
    def users_set_password(username: str, password_stdin: bool, generate_password: bool) -> None:
        """Set a new password; ends the user's sessions. Prompts unless --password-stdin/--generate-password."""
        store, _ = _store()
        password, generated = _password(password_stdin, generate_password)
        with _store_errors_as_cli_errors():
            store.set_password(username, password)
        click.echo(f"password of {username} changed; sessions ended", err=generated)
        if generated:
            click.echo("password (shown once):", err=True)
            click.echo(password)

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
        from aggregator.proxy.storage.store import StoreError

        store, _ = _store()
        with _store_errors_as_cli_errors():
            if store.get_user(username) is None:
                raise StoreError(f"no user {username!r} to own the token; create it first, e.g. "
                                 f"`aggregator users add {username} --role launcher --generate-password`")
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
        found = store.list_tokens(username)
        if not found:
            click.echo(f"no tokens{f' for {username}' if username else ''}; create one with "
                       "`aggregator tokens create --user <name>`", err=True)
        for t in found:
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
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line (Unix times).")
    def audit(username: str | None, event: str | None, decision: str | None, operation: str | None,
              since: float | None, limit: int, as_json: bool) -> None:
        """Query the proxy's audit log, newest first (ISO times; --json for one object per line)."""
        from aggregator.proxy.storage.audit import AuditQuery

        _, log = _store()
        query = AuditQuery(username=username, event=event, decision=decision, operation=operation, since=since,
                           limit=limit)
        records = log.query(query)
        if not records and not as_json:
            # Say so on stderr: an empty answer must not look like a broken command; --json stays machine-clean.
            click.echo("no audit records match", err=True)
        for record in records:
            if as_json:
                click.echo(json.dumps(record.model_dump(), sort_keys=True))
                continue
            targets = " ".join(f"{k}={','.join(v)}" for k, v in sorted(record.targets.items()))
            fields = [datetime.fromtimestamp(record.ts, UTC).isoformat(timespec="seconds"), record.decision,
                      record.event, record.username or "-", record.role or "-", record.source_ip or "-",
                      record.operation or "-", targets or "-", f"run={record.run_id}" if record.run_id else "",
                      record.reason or ""]
            click.echo("\t".join(fields).rstrip())
