"""Build the proxy from settings and serve it with uvicorn; bootstrap the first admin."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from aggregator.proxy.app import ProxyApp
from aggregator.proxy.config import ProxySettings
from aggregator.proxy.starting import StartingGate
from aggregator.proxy.storage.audit import AuditLog, AuditRecord
from aggregator.proxy.storage.db import make_engine, migrate
from aggregator.proxy.storage.store import Store

log = logging.getLogger(__name__)


def open_store(db_url: str) -> tuple[Store, AuditLog]:
    """The proxy database, migrated; the caller closes it (`Store.close`) or uses `opened_store`."""
    engine = make_engine(db_url)
    migrate(engine)
    return Store(engine), AuditLog(engine)


@contextmanager
def opened_store(db_url: str) -> Iterator[tuple[Store, AuditLog]]:
    store, audit = open_store(db_url)
    try:
        yield store, audit
    finally:
        store.close()


NO_TTY_HINT = ("No users yet and no terminal to show a generated password on (stdout is not a TTY, so it would "
               "end up in container logs). Set AGGREGATOR_ADMIN_PASSWORD (from a secret) and restart, or run "
               "`aggregator users add <name> --role admin`.")


def bootstrap_admin(store: Store, audit: AuditLog, environ: dict[str, str] | None = None,
                    interactive: bool | None = None) -> str | None:
    """Create the first admin if there are no users at all. Returns a generated password (to print once).

    AGGREGATOR_ADMIN_PASSWORD (and AGGREGATOR_ADMIN_USER, default `admin`) set it explicitly; otherwise a
    random one is generated, but only when stdout is a terminal: a password printed by a container goes to
    its logs. Never runs again once any user exists, so the variable cannot reset a password; safe when
    several replicas start at once (Store.create_first_admin)."""
    env = os.environ if environ is None else environ
    if store.count_users():
        return None
    username = env.get("AGGREGATOR_ADMIN_USER") or "admin"
    given = env.get("AGGREGATOR_ADMIN_PASSWORD")
    if not given and not (sys.stdout.isatty() if interactive is None else interactive):
        return None  # build_app tells the operator what to do
    password = given or secrets.token_urlsafe(18)
    if not store.create_first_admin(username, password):
        return None
    audit.record(AuditRecord(event="bootstrap_admin", username=username, role="admin", decision="allow",
                             reason="from AGGREGATOR_ADMIN_PASSWORD" if given else "generated password"))
    return None if given else password


def build_app(settings: ProxySettings) -> ProxyApp:
    store, audit = open_store(settings.db_url)
    generated = bootstrap_admin(store, audit)
    if generated:
        user = os.environ.get("AGGREGATOR_ADMIN_USER") or "admin"
        # Printed once to the operator's terminal (checked to be one), never logged.
        print(f"\nFirst start: created admin user {user!r} with password: {generated}\n"
              "Change it with `aggregator users set-password` and keep it safe; it is not shown again.\n",
              flush=True)
    elif not store.count_users():
        print(NO_TTY_HINT, file=sys.stderr, flush=True)
    return ProxyApp(settings, store, audit)


class DrainingServer(uvicorn.Server):
    """uvicorn waits for open connections to finish before the app's shutdown; live event streams would hold
    a stopping replica until their lifetime ends. This ends them first (their clients reconnect elsewhere)."""

    def __init__(self, config: uvicorn.Config, proxy: ProxyApp) -> None:
        super().__init__(config)
        self.proxy = proxy

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.proxy.api.close()
        await super().shutdown(sockets=sockets)


def serve(settings: ProxySettings, host: str, port: int) -> None:
    # The gate answers "starting" (503) until the webserver does: the proxy may start before it.
    proxy = build_app(settings)
    app = StartingGate(proxy, settings.upstream, settings.path_prefix, settings.wait_for_location)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", proxy_headers=False,
                            ws="websockets-sansio", lifespan="on", server_header=False, date_header=False)
    try:
        DrainingServer(config, proxy).run()
    except KeyboardInterrupt:
        # uvicorn re-raises the SIGINT it handled after a graceful shutdown; that is a clean exit for us.
        pass
