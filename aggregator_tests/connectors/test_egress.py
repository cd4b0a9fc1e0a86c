"""Where connectors may go (connectors/egress.py), with real files, real databases and real listeners.

The suite allows loopback and its temporary directories (conftest.py `egress_for_tests`); every test here
sets the rule it exercises itself."""

from __future__ import annotations

import http.server
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.rebinding import NAME, rebinding
from connectors.egress import EgressError, check_address
from connectors.files import FilesResource
from connectors.files.config import FileStream
from connectors.rest.resource import RestApiResource
from connectors.sql import SqlResource, SqlStream


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One data root, `tmp_path/data`; everything else in tmp_path is outside it."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "ok.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("AGGREGATOR_DATA_ROOTS", str(root))
    monkeypatch.delenv("AGGREGATOR_ALLOWED_NETWORKS", raising=False)
    return root


def _refused(call: object, *needles: str) -> str:
    with pytest.raises(EgressError) as refused:
        call()  # type: ignore[operator]
    message = str(refused.value)
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("base_dir", ["/etc", "/proc", "/proc/self", "/", "~"])
def test_files_outside_the_data_roots_are_refused(roots: Path, base_dir: str) -> None:
    files = FilesResource(base_dir=base_dir)
    for call in (files.check, files.discover, lambda: list(files.read(FileStream(path="passwd")))):
        message = _refused(call, "base_dir", "data roots", "AGGREGATOR_DATA_ROOTS")
        assert base_dir.rstrip("/") not in message.replace("AGGREGATOR_DATA_ROOTS", "") or base_dir == "/"


def test_a_symlink_out_of_a_data_root_is_refused(roots: Path) -> None:
    (roots / "etc").symlink_to("/etc")  # base_dir through a link
    _refused(FilesResource(base_dir=str(roots / "etc")).check, "base_dir", "symlinks resolved")
    (roots / "passwd.csv").symlink_to("/etc/passwd")  # a file inside the root linking out
    files = FilesResource(base_dir=str(roots))
    message = _refused(lambda: list(files.read(FileStream(path="*.csv"))), "passwd.csv links outside")
    assert "/etc" not in message
    _refused(lambda: files.discover(None), "links outside")
    (roots / "passwd.csv").unlink()
    assert [b.rows for b in files.read(FileStream(path="*.csv"))] == [[(1, 2)]]


def test_files_under_a_root_are_read(roots: Path) -> None:
    sub = roots / "exports"
    sub.mkdir()
    (sub / "x.csv").write_text("id\n7\n")
    assert "readable" in FilesResource(base_dir=str(sub)).check()


def _sqlite(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE proxy_users (name TEXT, hash TEXT)")
        conn.execute("INSERT INTO proxy_users VALUES ('admin', 'argon2-hash')")
    return f"sqlite:///{path}"


def test_sqlite_files_outside_the_data_roots_are_refused(roots: Path, tmp_path: Path) -> None:
    """proxy.db, Dagster's run storage and the warehouse all live outside the data roots."""
    outside = _sqlite(tmp_path / "proxy.db")
    (tmp_path / "dagster" / "storage").mkdir(parents=True)
    runs = _sqlite(tmp_path / "dagster" / "storage" / "runs.db")
    (roots / "runs.db").symlink_to(tmp_path / "dagster" / "storage" / "runs.db")
    for url in (outside, runs, f"sqlite:///{roots / 'runs.db'}", f"sqlite:///file:{tmp_path / 'proxy.db'}?mode=ro&uri=true"):
        source = SqlResource(url=url)
        _refused(source.check, "url (SQLite file)", "data roots")
        _refused(lambda source=source: source.discover(SqlStream(table="proxy_users")), "data roots")
        # A spec's destination connection may not write there either.
        _refused(lambda url=url: SqlDestination(url=url, declared_in_spec=True).engine, "data roots")
    inside = _sqlite(roots / "shop.db")
    assert "connected" in SqlResource(url=inside).check()


def test_sqlite_sources_cannot_attach_other_files(roots: Path, tmp_path: Path) -> None:
    _sqlite(tmp_path / "proxy.db")
    source = SqlResource(url=_sqlite(roots / "shop.db"))
    with source.engine.connect() as conn, pytest.raises(sa.exc.DatabaseError, match="not authorized"):
        conn.execute(sa.text(f"ATTACH DATABASE '{tmp_path / 'proxy.db'}' AS p"))


# Another database every server of the dialect has: a source may read it.
OTHER_DATABASE = {"postgresql": "postgres", "mysql": "information_schema"}


@pytest.fixture(params=["postgresql", "mysql"])
def server_db(request: pytest.FixtureRequest) -> str:
    """A fresh database on each database server a warehouse may be: PostgreSQL and MariaDB/MySQL."""
    if request.param == "mysql":
        return str(request.getfixturevalue("mysql_url"))
    pg_db: PgDatabase = request.getfixturevalue("pg_db")
    return pg_db.sqlalchemy_url


def test_the_platforms_databases_are_refused(roots: Path, server_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sa.engine.make_url(server_db)
    backend = url.get_backend_name()
    assert "connected" in SqlResource(url=server_db).check()
    # Declared without credentials, under another spelling of the same host: still the same database.
    port = url.port or {"postgresql": 5432, "mysql": 3306}[backend]
    monkeypatch.setenv("AGGREGATOR_PROTECTED_DATABASES", f"{backend}://localhost:{port}/{url.database}")
    _refused(SqlResource(url=server_db).check, "url", "platform's own databases")
    # A spec's destination may not write there either (a MySQL warehouse is checked as PostgreSQL's is).
    _refused(lambda: SqlDestination(url=server_db, declared_in_spec=True).engine, "url", "platform's own databases")
    monkeypatch.delenv("AGGREGATOR_PROTECTED_DATABASES")
    if backend == "postgresql":  # the platform's own stores are PostgreSQL
        monkeypatch.setenv("DAGSTER_PG_URL", url.render_as_string(hide_password=False))
        _refused(SqlResource(url=server_db).check, "platform's own databases")
    other = url.set(database=OTHER_DATABASE[backend]).render_as_string(hide_password=False)
    assert "connected" in SqlResource(url=other).check()


def test_a_sql_source_may_not_read_the_warehouse_but_its_destination_writes_it(
        roots: Path, server_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables in the warehouse belong to pipelines; another pipeline reads them through a ref (grant-checked),
    never through a SQL source pointed at the warehouse, whatever the URL's spelling."""
    url = sa.engine.make_url(server_db)
    backend = url.get_backend_name()
    monkeypatch.setenv("AGGREGATOR_WAREHOUSE_URL", url.render_as_string(hide_password=False))
    respelled = url.set(host="localhost", port=url.port or {"postgresql": 5432, "mysql": 3306}[backend])
    for source_url in (server_db, respelled.render_as_string(hide_password=False)):
        message = _refused(SqlResource(url=source_url).check, "url", "platform's warehouse", "ref")
        assert server_db not in message
    destination = SqlDestination(url=server_db, declared_in_spec=True)
    with destination.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    other = url.set(database=OTHER_DATABASE[backend]).render_as_string(hide_password=False)
    assert "connected" in SqlResource(url=other).check()  # another database on the same server is a source


def test_a_sqlite_warehouse_inside_a_data_root_is_still_not_a_source(roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where an operator's data roots happen to hold the warehouse file, the warehouse rule still keeps sources
    out of it (through a symlink too); other SQLite files there stay readable."""
    monkeypatch.setenv("AGGREGATOR_WAREHOUSE_URL", _sqlite(roots / "warehouse.db"))
    (roots / "alias.db").symlink_to(roots / "warehouse.db")
    for path in ("warehouse.db", "alias.db"):
        _refused(SqlResource(url=f"sqlite:///{roots / path}").check, "url", "platform's warehouse")
    assert "connected" in SqlResource(url=_sqlite(roots / "shop.db")).check()


class _Handler(http.server.BaseHTTPRequestHandler):
    redirect_to: str | None = None
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.headers.get("Authorization") or "")
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        body = b'[{"id": 1}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _server(host: str, redirect_to: str | None = None) -> Iterator[tuple[str, list[str]]]:
    handler: type[_Handler] = type("H", (_Handler,), {"redirect_to": redirect_to, "seen": []})
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _rest(base_url: str) -> RestApiResource:
    return RestApiResource(base_url=base_url, max_attempts=1, auth={"type": "bearer", "token": "canary-token-1"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_rest_to_loopback_is_refused_before_anything_is_sent(
        roots: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """By name or by address: the check is on the socket's peer, so `localhost` is caught like 127.0.0.1."""
    with _server("127.0.0.1") as (url, seen):
        target = url.replace("127.0.0.1", host)
        for call in (_rest(target).check, lambda: list(_rest(target).read(_stream()))):
            _refused(call, "loopback address", "AGGREGATOR_ALLOWED_NETWORKS")
        assert seen == []  # not even a request line reached the listener
        monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")
        assert [b.rows for b in _rest(target).read(_stream())] == [[(1,)]]
        assert seen == ["Bearer canary-token-1"]


def _stream():  # type: ignore[no-untyped-def]
    from connectors.rest.config import RestStream

    return RestStream(path="items")


def test_a_redirect_to_a_refused_address_is_refused(roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An allowed host that redirects to a refused one: the new connection is checked like the first."""
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.2/32")
    with _server("127.0.0.1") as (inner, inner_seen), _server("127.0.0.2", redirect_to=f"{inner}/items") as (outer, _):
        _refused(lambda: list(_rest(outer).read(_stream())), "loopback address")
        assert inner_seen == []


def test_the_platforms_own_services_stay_refused_when_loopback_is_allowed(
        roots: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")
    with _server("127.0.0.1") as (url, seen):
        port = int(url.rsplit(":", 1)[1])
        monkeypatch.setenv("AGGREGATOR_PROTECTED_SERVICES", f"localhost:{port}")
        _refused(_rest(url).check, "platform's own services")
        assert seen == []


NON_PUBLIC = ["10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "::1", "fe80::1",
              "fd00::1", "::ffff:127.0.0.1", "224.0.0.1", "0.0.0.0"]  # noqa: S104 (checked, nothing binds)


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_refused(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGGREGATOR_ALLOWED_NETWORKS", raising=False)
    with pytest.raises(EgressError):
        check_address(address, 80)
    check_address("93.184.216.34", 443)  # a public address: allowed (nothing is contacted)


def test_a_bad_allowed_network_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "not-a-cidr")
    with pytest.raises(EgressError, match="AGGREGATOR_ALLOWED_NETWORKS: 'not-a-cidr' is not a CIDR"):
        check_address("10.0.0.1", 80)


def test_default_roots_hold_the_samples_and_not_the_platform_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AGGREGATOR_DATA_ROOTS the README's quick start reads the bundled samples, and nothing of
    AGGREGATOR_HOME but its data and uploads directories."""
    from aggregator.settings import EXAMPLE_PIPELINES_DIR

    monkeypatch.delenv("AGGREGATOR_DATA_ROOTS")
    monkeypatch.setenv("AGGREGATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGREGATOR_PIPELINES", raising=False)
    assert "readable" in FilesResource(base_dir=str(EXAMPLE_PIPELINES_DIR / "data")).check()
    assert "connected" in SqlResource(url=f"sqlite:///{EXAMPLE_PIPELINES_DIR / 'data' / 'shop.db'}").check()
    (tmp_path / "home" / "data").mkdir(parents=True)
    assert "readable" in FilesResource(base_dir=str(tmp_path / "home" / "data")).check()
    _refused(SqlResource(url=_sqlite(tmp_path / "home" / "proxy.db")).check, "data roots")
    os.makedirs(tmp_path / "home" / "dagster", exist_ok=True)
    _refused(FilesResource(base_dir=str(tmp_path / "home" / "dagster")).check, "data roots")


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_name_that_rebinds_to_a_platform_database_is_refused_when_connected(
        backend: str, roots: Path, pg_db: PgDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL's name answers another address to the check and the platform database's to the driver: the
    connection's peer is checked, so the platform database is still never read (PostgreSQL and MariaDB)."""
    if backend == "postgresql":
        url = sa.engine.make_url(pg_db.sqlalchemy_url)
    else:
        url = sa.engine.make_url("mysql+pymysql://root@127.0.0.1:3306/mysql")
    port = url.port or 5432
    monkeypatch.setenv("AGGREGATOR_PROTECTED_DATABASES", f"{backend}://127.0.0.1:{port}/{url.database}")
    _refused(SqlResource(url=url.render_as_string(hide_password=False)).check, "platform's own databases")
    rebound = url.set(host=NAME).render_as_string(hide_password=False)
    with rebinding(monkeypatch, "127.0.0.2", "127.0.0.1") as names:
        message = _refused(SqlResource(url=rebound).check, "url", "reached one of the platform's own databases")
        assert names.answers >= 2  # the check's lookup, then the driver's
    assert "127.0.0.1" not in message
    with rebinding(monkeypatch, "127.0.0.2", "127.0.0.1"), pytest.raises(EgressError, match="reached one of"), \
            SqlDestination(url=rebound, declared_in_spec=True).engine.connect():
        pass
