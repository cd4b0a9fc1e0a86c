"""Real-service fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import exc as sa_exc

from aggregator_tests.helpers import warehouse_for
from aggregator_tests.postgres import NoPostgres, PgDatabase, find_server, temporary_database
from aggregator_tests.s3_server import S3Server, running_s3_server

REPO = Path(__file__).resolve().parents[1]

# ResourceWarning is an error in every test (pyproject.toml): an engine, client, socket or file left open fails
# the test that leaked it (issue 20.7). Most leaks warn at once, when the last reference goes; one held in a
# reference cycle warns only when the garbage collector finds it, which could be during a later test. So each
# test's garbage is collected as it ends (its warnings are its own), and what survives is frozen, which keeps
# the next collection down to what the next test allocates (a full collection of a worker's heap, Dagster and
# pandas included, takes 0.2-0.4 s; this one milliseconds). Frozen objects that become cyclic garbage later are
# freed every FREEZE_EVERY tests.
FREEZE_EVERY = 100
_tests_since_unfreeze = 0


@pytest.hookimpl(trylast=True)  # after the fixtures' teardown, before pytest reports unraisable exceptions
def pytest_runtest_teardown(item: pytest.Item) -> None:
    import gc

    global _tests_since_unfreeze
    gc.collect()
    _tests_since_unfreeze += 1
    if _tests_since_unfreeze >= FREEZE_EVERY:
        _collect_frozen()
        _tests_since_unfreeze = 0
    gc.freeze()


def _collect_frozen() -> None:
    """Free, silently, what became cyclic garbage while frozen: it was alive when its test ended (a fixture
    or cache of a wider scope), so no test can answer for it now."""
    import gc
    import sys
    import warnings

    gc.unfreeze()
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None  # finalizers of that garbage may raise too
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    finally:
        sys.unraisablehook = hook


@pytest.fixture(scope="session", autouse=True)
def egress_for_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite's connectors read files under pytest's temporary directories and the bundled samples, and
    talk to HTTP servers on loopback: allowed here explicitly, as an operator would (connectors/egress.py).
    Tests of the egress rule itself set their own values."""
    from aggregator.settings import EXAMPLE_PIPELINES_DIR

    roots = [tmp_path_factory.getbasetemp().parent, EXAMPLE_PIPELINES_DIR / "data", REPO / "docs"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")
        patch.setenv("AGGREGATOR_DATA_ROOTS", ",".join(str(r) for r in roots))
        yield


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Admin URL of a real PostgreSQL. Not finding one is an error, never a skip: the embedded wheel
    means every machine that can install the test extra can run PostgreSQL."""
    # The parent of basetemp is shared by all xdist workers, so they share one embedded server.
    state_dir = tmp_path_factory.getbasetemp().parent / "embedded-pg"
    try:
        url, origin = find_server(state_dir)
    except NoPostgres as exc:
        pytest.fail(f"PostgreSQL is required: {exc}", pytrace=False)
    print(f"PostgreSQL for tests: {origin}")
    return url


@pytest.fixture
def pg_db(pg_admin_url: str) -> Iterator[PgDatabase]:
    """A fresh database for one test, dropped afterwards."""
    with temporary_database(pg_admin_url) as db:
        yield db


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh database on a real MariaDB/MySQL server (aggregator_tests/mariadb.py), dropped afterwards."""
    from aggregator_tests.mariadb import temporary_database as mysql_database

    try:
        with mysql_database() as url:
            yield url
    except sa_exc.OperationalError as exc:
        pytest.fail(f"MariaDB/MySQL is required (AGGREGATOR_TEST_MYSQL_URL or 127.0.0.1:3306): {exc.orig}",
                    pytrace=False)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto's, a subprocess on loopback) with authentication on; stopped at the
    end of the session. Tests take a fresh bucket each (`s3_server.new_bucket()`)."""
    with running_s3_server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def aggregator_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated AGGREGATOR_HOME with the warehouse inside it."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGGREGATOR_HOME", str(home))
    monkeypatch.delenv("AGGREGATOR_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("AGGREGATOR_PIPELINES", raising=False)
    return home


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A warehouse in each dialect the whole platform supports (loads, transforms, the API): SQLite in tmp_path,
    PostgreSQL in a fresh database."""
    return warehouse_for(request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def load_warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A warehouse in each dialect pipelines load into: `warehouse_url`'s, and MySQL/MariaDB in a fresh database."""
    return warehouse_for(request, tmp_path)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance, closed after the test (it owns a temporary directory)."""
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on each run/event storage the platform ships: SQLite (Dagster's default, one file
    per run) and PostgreSQL (deploy/dagster.yaml on a fresh database)."""
    home = tmp_path / "dagster"
    home.mkdir()
    if request.param == "sqlite":
        with dg.instance_for_test(temp_dir=str(home)) as inst:
            yield inst
        return
    pg_db: PgDatabase = request.getfixturevalue("pg_db")
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    inst = dg.DagsterInstance.from_config(str(home))
    try:
        yield inst
    finally:
        inst.dispose()
