"""Where connectors may go: files under the data roots, SQL databases that are not the platform's own, public
HTTP addresses. Enforced inside the connectors, so a run, the worker and the CLI obey the same rule.

* **Files** (`files` connections, SQLite databases): only below a data root, compared after resolving
  symlinks (`realpath`), so a link inside a root pointing out of it is refused. `AGGREGATOR_DATA_ROOTS`
  (comma-separated directories) replaces the default: `$AGGREGATOR_HOME/data`, `$AGGREGATOR_HOME/uploads`,
  `$AGGREGATOR_PIPELINES/data` and the bundled samples' `data` directory.
* **SQL**: never the platform's own databases: those in `AGGREGATOR_PROTECTED_DATABASES` (comma-separated
  SQLAlchemy URLs, credentials not needed) and the proxy, platform and Dagster storage URLs when this process
  knows them (`AGGREGATOR_PROXY_DB_URL`, `AGGREGATOR_PLATFORM_DB_URL`, `DAGSTER_PG_URL`). A SQL *source*
  may not read the platform's warehouse (`AGGREGATOR_WAREHOUSE_URL`) either: its tables belong to pipelines,
  and a pipeline reads another's tables only through a ref, which the grant check sees. A database is the
  same when host (by resolved address), port and database name match. SQLite files must be under a data
  root, which keeps out every SQLite file of the platform (`proxy.db`, Dagster's storage, the warehouse).
* **HTTP** (REST connections, OAuth2 token endpoints, redirects): the address each socket actually
  connected to must be public; loopback, private, link-local, shared, reserved and multicast addresses are
  refused unless `AGGREGATOR_ALLOWED_NETWORKS` (comma-separated CIDRs) contains them. Checking the peer of
  the connected socket, not the name, closes DNS tricks (a public name resolving to 127.0.0.1, rebinding).
* **Object storage and SFTP** (files connections on `s3://`, `az://`, `sftp://`, …): the same rule for the
  endpoint, resolved once by `pinned_address`; the client then connects to exactly the address that was
  checked (SFTP: a socket opened and checked here; plain-HTTP endpoints: the address in place of the name).
  An `https://` endpoint keeps its name, because the certificate check binds the connection to it: a second
  lookup that answered an internal address would fail the TLS handshake before a request is sent.

Messages name the field and the rule, never the resolved value and never a path outside the roots.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorConfigError, SourceReadError

DATA_ROOTS_ENV = "AGGREGATOR_DATA_ROOTS"
ALLOWED_NETWORKS_ENV = "AGGREGATOR_ALLOWED_NETWORKS"
PROTECTED_DATABASES_ENV = "AGGREGATOR_PROTECTED_DATABASES"
PROTECTED_SERVICES_ENV = "AGGREGATOR_PROTECTED_SERVICES"
# Platform databases a process may know of by these variables (the proxy's are never in a pipeline's
# environment; AGGREGATOR_PROTECTED_DATABASES carries them there).
PLATFORM_DB_ENVS = ("AGGREGATOR_PROXY_DB_URL", "AGGREGATOR_PLATFORM_DB_URL", "AGGREGATOR_SPECS_DB_URL",
                    "DAGSTER_PG_URL")
# The warehouse: pipelines write it, so destinations may open it; sources may not.
WAREHOUSE_ENV = "AGGREGATOR_WAREHOUSE_URL"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressError(ConnectorConfigError):
    """A connector was pointed somewhere the platform does not let connectors go."""


def _split(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]


def data_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The directories files may be read from, symlinks resolved."""
    env = os.environ if environ is None else environ
    if env.get(DATA_ROOTS_ENV, "").strip():
        roots = [Path(p).expanduser() for p in _split(env[DATA_ROOTS_ENV])]
    else:
        from aggregator.settings import EXAMPLE_PIPELINES_DIR

        home = Path(env.get("AGGREGATOR_HOME") or ".aggregator").expanduser()
        pipelines = Path(env.get("AGGREGATOR_PIPELINES") or EXAMPLE_PIPELINES_DIR).expanduser()
        uploads = Path(env.get("AGGREGATOR_UPLOADS_DIR") or home / "uploads").expanduser()  # where sensors watch
        roots = [home / "data", uploads, pipelines / "data", EXAMPLE_PIPELINES_DIR / "data"]
    return [Path(os.path.realpath(r)) for r in roots]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_path(path: str | Path, field: str, environ: Mapping[str, str] | None = None) -> Path:
    """`path` with symlinks resolved, if that lies under a data root; EgressError naming `field` otherwise."""
    real = Path(os.path.realpath(Path(path).expanduser()))
    if not _inside(real, data_roots(environ)):
        raise EgressError(
            f"{field}: connectors may read files only under the platform's data roots ({DATA_ROOTS_ENV}); "
            "this path (symlinks resolved) is outside them")
    return real


# --- SQL ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DbIdentity:
    backend: str
    addresses: frozenset[str]
    port: int | None
    database: str


def _addresses(host: str | None) -> frozenset[str]:
    host = host or "localhost"
    try:
        return frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, None))
    except (OSError, UnicodeError):
        return frozenset({host.lower()})


def _identity(url: str) -> _DbIdentity | None:
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except Exception:  # noqa: BLE001 - not a URL: nothing to compare
        return None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return None  # files: the data-root rule decides
    default_port = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}.get(backend)
    return _DbIdentity(backend.replace("mariadb", "mysql"), _addresses(parsed.host), parsed.port or default_port,
                       parsed.database or "")


def protected_databases(environ: Mapping[str, str] | None = None, source: bool = False) -> list[str]:
    """URLs of the platform's own databases known to this process; for a source, the warehouse too."""
    env = os.environ if environ is None else environ
    urls = _split(env.get(PROTECTED_DATABASES_ENV, ""))
    urls += [env[name] for name in (*PLATFORM_DB_ENVS, *((WAREHOUSE_ENV,) if source else ())) if env.get(name)]
    return urls


def sqlite_database(url: Any) -> str | None:
    """The file a SQLite URL opens (URI filenames included); '' for in-memory; None for other databases."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):  # sqlite:///file:path?mode=ro&uri=true
        database = database.removeprefix("file:").split("?", 1)[0]
    return "" if database in ("", ":memory:") else database


_WAREHOUSE_REFUSAL = (f"{{field}}: this is the platform's warehouse ({WAREHOUSE_ENV}); a pipeline reads another "
                      "pipeline's tables through a ref in a transform, not with a SQL source")


def check_sql_url(url: str, field: str, environ: Mapping[str, str] | None = None, source: bool = False) -> None:
    """EgressError naming `field` if `url` is one of the platform's databases (for a `source`, the warehouse
    included) or a SQLite file outside the data roots."""
    env = os.environ if environ is None else environ
    database = sqlite_database(url)
    if database is not None:
        if database:
            real = check_path(database, f"{field} (SQLite file)", env)
            warehouse = sqlite_database(env.get(WAREHOUSE_ENV) or "sqlite://") if source else None
            if warehouse and real == Path(os.path.realpath(Path(warehouse).expanduser())):
                raise EgressError(_WAREHOUSE_REFUSAL.format(field=field))
        return
    target = _identity(url)
    if target is not None:
        _refuse_platform_database(target, field, "this is", env, source)


def _refuse_platform_database(target: _DbIdentity, field: str, what: str, env: Mapping[str, str],
                              source: bool) -> None:
    """EgressError if `target` is one of the platform's databases (for a `source`, the warehouse too): same
    backend, port and database name, and an address in common."""
    for protected in protected_databases(env, source):
        other = _identity(protected)
        if (other is not None and other.backend == target.backend and other.port == target.port
                and other.database == target.database and other.addresses & target.addresses):
            if source and env.get(WAREHOUSE_ENV) == protected:
                raise EgressError(_WAREHOUSE_REFUSAL.format(field=field))
            raise EgressError(f"{field}: {what} one of the platform's own databases, which connectors may "
                              f"never read ({PROTECTED_DATABASES_ENV})")


def check_sql_peer(backend: str, address: str | None, port: int | None, database: str, field: str,
                   environ: Mapping[str, str] | None = None, source: bool = False) -> None:
    """`check_sql_url` for the server a connection actually reached (its peer address, port and database):
    the URL's name was resolved for the check, and the driver resolves it again to connect (DNS rebinding)."""
    env = os.environ if environ is None else environ
    addresses = frozenset({address}) if address else _addresses(None)  # a Unix socket: this machine
    peer = _DbIdentity(backend.replace("mariadb", "mysql"), addresses, port, database)
    _refuse_platform_database(peer, field, "this connection reached", env, source)


# --- HTTP --------------------------------------------------------------------------------------------------


def allowed_networks(environ: Mapping[str, str] | None = None) -> list[IpNetwork]:
    env = os.environ if environ is None else environ
    networks: list[IpNetwork] = []
    for cidr in _split(env.get(ALLOWED_NETWORKS_ENV, "")):
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError as exc:
            raise EgressError(f"{ALLOWED_NETWORKS_ENV}: {cidr!r} is not a CIDR (e.g. 10.20.0.0/16)") from exc
    return networks


def _kind(ip: IpAddress) -> str:
    for attr, kind in (("is_loopback", "a loopback"), ("is_link_local", "a link-local"),
                       ("is_multicast", "a multicast"), ("is_unspecified", "an unspecified"),
                       ("is_private", "a private")):
        if getattr(ip, attr):
            return kind
    return "a non-public"


def _service(entry: str) -> tuple[frozenset[str], int] | None:
    host, _, port = entry.strip().rpartition(":")
    if not host or not port.isdigit():
        return None
    return _addresses(host.strip("[]")), int(port)


def check_address(address: str, port: int | None = None, environ: Mapping[str, str] | None = None) -> None:
    """EgressError unless `address` (an IP) is public or in AGGREGATOR_ALLOWED_NETWORKS, and is not one of
    the platform's own services."""
    env = os.environ if environ is None else environ
    ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for entry in _split(env.get(PROTECTED_SERVICES_ENV, "")):
        service = _service(entry)
        if service is not None and port == service[1] and str(ip) in service[0]:
            raise EgressError("connectors may never reach the platform's own services (the webserver, proxy "
                              f"or worker: {PROTECTED_SERVICES_ENV}); this request connected to one")
    if ip.is_global and not ip.is_multicast:
        return
    if any(ip in net for net in allowed_networks(env) if net.version == ip.version):
        return
    raise EgressError(f"connectors may reach only public addresses: this request connected to {_kind(ip)} "
                      f"address; allow its network in {ALLOWED_NETWORKS_ENV} (CIDRs) if it should be reachable")


def pinned_address(host: str, port: int, field: str, environ: Mapping[str, str] | None = None) -> str:
    """The address to connect to for `host:port`: every address the name resolves to is checked, and the
    first is returned for the caller to connect to, so that a second lookup (DNS rebinding) never decides."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # a name that does not resolve now: the read fails, may be retried
        raise SourceReadError(f"{field}: cannot resolve {host!r}: {exc}") from None
    for info in infos:
        try:
            check_address(str(info[4][0]), port, environ)
        except EgressError as exc:
            raise EgressError(f"{field} {host}:{port}: {exc}") from None
    return str(infos[0][4][0])


def url_host(address: str) -> str:
    """`address` as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def check_socket(sock: socket.socket) -> None:
    """Check the peer of a connected socket; close it when refused (nothing was sent yet)."""
    try:
        peer = sock.getpeername()
        check_address(str(peer[0]), int(peer[1]))
    except BaseException:
        sock.close()
        raise
