"""The maintenance pieces against the local PostgreSQL: the per-component roles (postgres-init), the migrate step
and wait_for.py, run retention (prune_runs.py) and backup/restore (backup.sh, restore.sh)."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import pytest

from aggregator_tests.deploy.paths import DEPLOY, executable
from aggregator_tests.postgres import PgDatabase

BIN = DEPLOY / "bin"
FILES = DEPLOY / "helm" / "aggregator" / "files"
MAINTENANCE_INSTANCE = "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\ntelemetry:\n  enabled: false\n"


def libpq_env(dsn: str) -> dict[str, str]:
    url = urlsplit(dsn)
    return {**os.environ, "PGHOST": url.hostname or "127.0.0.1", "PGPORT": str(url.port or 5432),
            "PGUSER": url.username or "postgres", "PGPASSWORD": url.password or ""}


def admin_dsn(dsn: str, database: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + database


@pytest.fixture
def home(tmp_path: Path, pg_db: PgDatabase) -> dict[str, str]:
    """Environment of a maintenance container: DAGSTER_HOME with the chart's maintenance instance."""
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(MAINTENANCE_INSTANCE)
    return {**os.environ, "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": pg_db.dsn}


def wait_for(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BIN / "wait_for.py"), *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_maintenance_instance_matches_the_chart() -> None:
    template = (DEPLOY / "helm" / "aggregator" / "templates" / "_helpers.tpl").read_text()
    body = template.split('define "aggregator.maintenanceInstance" -}}\n', 1)[1].split("{{- end }}", 1)[0]
    assert body == MAINTENANCE_INSTANCE


def test_services_wait_until_migrate_has_run(home: dict[str, str]) -> None:
    """Regression (issue 15, defects 6 and 12): services started on an empty database raced creating the schema.
    wait_for.py --schema holds a service back, with a log line per attempt, until `dagster instance migrate`
    (the Compose `migrate` service, the chart's hook) has created it; then it runs the command."""
    before = wait_for(home, "--schema", "DAGSTER_PG_URL", "--attempts", "2", "--delay", "0", "--",
                      sys.executable, "-c", "print('started')")
    assert before.returncode != 0 and "started" not in before.stdout
    assert "waiting for Dagster schema" in before.stderr and "attempt 1/2" in before.stderr
    assert "gave up on Dagster schema" in before.stderr and "dagster instance migrate" in before.stderr
    password = urlsplit(home["DAGSTER_PG_URL"]).password
    assert not password or password not in before.stderr

    migrate = subprocess.run([executable("dagster"), "instance", "migrate"], capture_output=True, text=True,
                             env=home, timeout=300, check=False)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    after = wait_for(home, "--postgres", "DAGSTER_PG_URL", "--schema", "DAGSTER_PG_URL", "--attempts", "2", "--",
                     sys.executable, "-c", "print('started')")
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "started" and "is ready" in after.stderr


def test_wait_for_gives_up_on_a_closed_port(home: dict[str, str]) -> None:
    result = wait_for(home, "--tcp", "127.0.0.1:1", "--attempts", "2", "--delay", "0", "--", "true")
    assert result.returncode != 0 and "gave up on TCP 127.0.0.1:1 after 2 attempts" in result.stderr


@dg.asset
def retention_probe_asset() -> int:
    """An asset whose materialization must survive retention."""
    dg.get_dagster_logger().info("a step log line retention may delete")
    return 1


@dg.op
def chatty_op() -> None:
    dg.get_dagster_logger().info("log line of a run without asset events")


@dg.job
def op_only_job() -> None:
    chatty_op()


def test_retention_deletes_old_runs_and_keeps_asset_history(home: dict[str, str], pg_db: PgDatabase,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 10: nothing pruned runs and event logs. prune_runs.py deletes old runs without asset events and
    trims the others to their asset and lifecycle events, so asset history survives."""
    sys.path.insert(0, str(BIN))
    try:
        import prune_runs
    finally:
        sys.path.remove(str(BIN))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    with dg.DagsterInstance.from_config(home["DAGSTER_HOME"]) as instance:
        asset_run = dg.materialize([retention_probe_asset], instance=instance).run_id
        op_run = op_only_job.execute_in_process(instance=instance).run_id
        recent = prune_runs.prune(instance, datetime.timedelta(days=30))
        assert recent == {"deleted_runs": 0, "trimmed_runs": 0, "deleted_events": 0}, "recent runs are kept"
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=31)
        dry = prune_runs.prune(instance, datetime.timedelta(days=30), now=later, dry_run=True)
        assert instance.get_run_by_id(op_run) is not None
        counts = prune_runs.prune(instance, datetime.timedelta(days=30), now=later)
        assert counts == dry and counts["deleted_runs"] == 1 and counts["trimmed_runs"] == 1
        assert instance.get_run_by_id(op_run) is None
        assert instance.get_run_by_id(asset_run) is not None
        materialization = instance.get_latest_materialization_event(dg.AssetKey("retention_probe_asset"))
        assert materialization is not None and materialization.run_id == asset_run
        kept = {r.event_log_entry.dagster_event.event_type_value if r.event_log_entry.dagster_event else None
                for r in instance.get_records_for_run(asset_run).records}
        assert None not in kept, "plain log lines are gone"
        assert set(kept) <= set(prune_runs.KEEP) and "ASSET_MATERIALIZATION" in kept
        assert prune_runs.prune(instance, datetime.timedelta(days=30), now=later)["deleted_events"] == 0
        # A daily job looks only at runs that crossed the cutoff within its window: a year later, nothing.
        much_later = later + datetime.timedelta(days=365)
        assert prune_runs.prune(instance, datetime.timedelta(days=30), now=much_later,
                                window=datetime.timedelta(days=7))["trimmed_runs"] == 0
        assert prune_runs.prune(instance, datetime.timedelta(days=30), now=much_later)["trimmed_runs"] == 1


def test_backup_and_restore_round_trip(pg_db: PgDatabase, tmp_path: Path) -> None:
    """Defect 11: backups were prose only. backup.sh dumps a database; restore.sh restores it into a new one,
    and the rows come back."""
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, amount numeric NOT NULL)")
        conn.execute("INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 500) g")
    env = {**libpq_env(pg_db.dsn), "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_DATABASES": pg_db.name,
           "BACKUP_KEEP": "3"}
    backup = subprocess.run(["sh", str(FILES / "backup.sh")], capture_output=True, text=True, env=env,
                            timeout=300, check=False)
    assert backup.returncode == 0, backup.stderr
    (dump,) = (tmp_path / "backups" / pg_db.name).glob("*.dump")
    assert not list((tmp_path / "backups").rglob("*.partial"))

    target = f"restore_{uuid.uuid4().hex[:12]}"
    backup_role, other_role = f"backup_{target}", f"other_{target}"
    postgres = admin_dsn(pg_db.dsn, "postgres")
    with psycopg.connect(postgres, autocommit=True) as conn:
        # As an operator who skipped the documented REVOKE: CREATE DATABASE opens it to every role (PUBLIC).
        conn.execute(f'CREATE DATABASE "{target}"')
        conn.execute(f'CREATE ROLE "{backup_role}" LOGIN')
        conn.execute(f'CREATE ROLE "{other_role}" LOGIN')
    try:
        restore = subprocess.run(["sh", str(FILES / "restore.sh"), str(dump), target], capture_output=True,
                                 text=True, env={**libpq_env(pg_db.dsn), "BACKUP_ROLE": backup_role},
                                 timeout=300, check=False)
        assert restore.returncode == 0, restore.stderr
        with psycopg.connect(admin_dsn(pg_db.dsn, target)) as conn:
            assert conn.execute("SELECT count(*), sum(amount) FROM orders").fetchone() == (500, 187875)
            # Regression (issue 19, minor 3): the restored database stayed open to every role.
            check = "SELECT has_database_privilege(%s, %s, 'CONNECT')"
            assert conn.execute(check, (other_role, target)).fetchone() == (False,)
            assert conn.execute(check, (backup_role, target)).fetchone() == (True,)
        again = subprocess.run(["sh", str(FILES / "restore.sh"), str(dump), target], capture_output=True,
                               text=True, env=libpq_env(pg_db.dsn), timeout=300, check=False)
        assert again.returncode != 0, "restoring over existing tables stops at the first error"
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
            for role in (backup_role, other_role):
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def roles(pg_db: PgDatabase) -> Iterator[dict[str, tuple[str, str]]]:
    """postgres-init run on the local server with unique names: {component: (role = database, password)}."""
    suffix = uuid.uuid4().hex[:8]
    made = {p: (f"t{suffix}_{p.lower()}", uuid.uuid4().hex)
            for p in ("DAGSTER", "WAREHOUSE", "PROXY", "BACKUP", "SPECS_READER")}
    env = {**libpq_env(pg_db.dsn), "POSTGRES_USER": urlsplit(pg_db.dsn).username or "postgres",
           "POSTGRES_DB": "postgres", "AGGREGATOR_INIT_DIR": str(DEPLOY / "postgres-init")}
    for prefix, (name, password) in made.items():
        env[f"{prefix}_DB_ROLE"] = env[f"{prefix}_DB_NAME"] = name
        env[f"{prefix}_DB_PASSWORD"] = password
    postgres = admin_dsn(pg_db.dsn, "postgres")
    try:
        result = subprocess.run(["sh", str(DEPLOY / "postgres-init" / "10-roles.sh")], capture_output=True,
                                text=True, env=env, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        yield made
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            for prefix in ("DAGSTER", "WAREHOUSE", "PROXY"):
                conn.execute(f'DROP DATABASE IF EXISTS "{made[prefix][0]}" WITH (FORCE)')
            for name, _ in made.values():
                conn.execute(f'DROP ROLE IF EXISTS "{name}"')


def role_dsn(pg_db: PgDatabase, role: tuple[str, str], database: str) -> str:
    url = urlsplit(pg_db.dsn)
    return f"postgresql://{role[0]}:{role[1]}@{url.hostname}:{url.port or 5432}/{database}"


def test_each_role_reaches_only_its_own_database(pg_db: PgDatabase, roles: dict[str, tuple[str, str]]) -> None:
    """Defect 9: every service connected as the superuser owning all databases. postgres-init creates one role
    per component that can connect only to its own database, and a backup role that reads everything."""
    db = {prefix: role[0] for prefix, role in roles.items()}
    with psycopg.connect(role_dsn(pg_db, roles["WAREHOUSE"], db["WAREHOUSE"])) as conn:
        conn.execute("CREATE TABLE t (x int)")  # the owner can build its schema
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
    for role, other in (("WAREHOUSE", "DAGSTER"), ("PROXY", "WAREHOUSE"), ("DAGSTER", "PROXY")):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(role_dsn(pg_db, roles[role], db[other])).close()
    with psycopg.connect(role_dsn(pg_db, roles["BACKUP"], db["WAREHOUSE"])) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO t VALUES (2)")


def test_the_specs_reader_reads_the_spec_store_and_nothing_else(pg_db: PgDatabase, roles: dict[str, tuple[str, str]],
                                                               tmp_path: Path) -> None:
    """Issue 19: code servers, runs and the worker read specs from the proxy's database. postgres-init gives the
    reader CONNECT only; `aggregator specs apply --grant-read` (the Compose `specs` service, the chart's hook Job),
    run as the proxy's role on a fresh database, creates the store and grants SELECT on its tables alone: the
    reader sees the specs, cannot change them, and cannot read the proxy's users or sessions."""
    proxy_db, reader = roles["PROXY"][0], roles["SPECS_READER"][0]
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "empty.yaml").write_text("pipelines: []\n")
    owner_url = role_dsn(pg_db, roles["PROXY"], proxy_db).replace("postgresql://", "postgresql+psycopg://", 1)
    env = {**os.environ, "AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_SPECS_DB_URL": owner_url}
    apply = subprocess.run([executable("aggregator"), "specs", "apply", str(specs), "--no-env-check",
                            "--grant-read", reader], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert "+++ b/empty.yaml" in apply.stdout and f"role {reader} may read the spec store" in apply.stdout
    with psycopg.connect(role_dsn(pg_db, roles["SPECS_READER"], proxy_db)) as conn:
        assert conn.execute("SELECT path FROM spec_store_files").fetchall() == [("empty.yaml",)]
        for statement in ("DELETE FROM spec_store_files", "SELECT count(*) FROM proxy_users",
                          "CREATE TABLE t (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(role_dsn(pg_db, roles["SPECS_READER"], roles["DAGSTER"][0])).close()


def test_dagster_runs_on_its_least_privileged_role(pg_db: PgDatabase, roles: dict[str, tuple[str, str]],
                                                   tmp_path: Path) -> None:
    """The `dagster` role, no superuser, is enough for `dagster instance migrate` on an empty database and for
    an instance that records runs: least privilege does not break the platform."""
    dagster_home = tmp_path / "home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(MAINTENANCE_INSTANCE)
    url = role_dsn(pg_db, roles["DAGSTER"], roles["DAGSTER"][0])
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "DAGSTER_PG_URL": url}
    migrate = subprocess.run([executable("dagster"), "instance", "migrate"], capture_output=True, text=True,
                             env=env, timeout=300, check=False)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    ready = wait_for(env, "--schema", "DAGSTER_PG_URL", "--attempts", "1", "--", sys.executable, "-c", "print('ok')")
    assert ready.returncode == 0 and ready.stdout.strip() == "ok", ready.stderr


def documented_restore_sql() -> list[list[str]]:
    """The `-c '…'` statements of every documented `CREATE DATABASE warehouse_restored` command."""
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text().replace("\\\n", " ")
    commands = [line for line in docs.splitlines() if "CREATE DATABASE warehouse_restored" in line]
    return [re.findall(r"-c '([^']*)'", line) for line in commands]


def test_documented_restore_leaves_the_database_closed_to_other_roles(pg_admin_url: str) -> None:
    """Regression (issue 19, minor 3): after the documented restore, the new database had no ACL, i.e. every role
    could connect to it (PUBLIC CONNECT/TEMP). Runs the documented statements (Compose and Kubernetes) with
    throwaway names and checks that an unrelated role cannot connect, while the owner and the backup role can."""
    import psycopg

    procedures = documented_restore_sql()
    assert len(procedures) == 2, "one restore in the Compose section, one in the Kubernetes section"
    suffix = os.urandom(4).hex()
    names = {"warehouse_restored": f"restored_{suffix}", "warehouse": f"owner_{suffix}",
             "aggregator_backup": f"backup_{suffix}"}
    other = f"other_{suffix}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for role in (names["warehouse"], names["aggregator_backup"], other):
            conn.execute(f"CREATE ROLE {role} LOGIN")
        try:
            for statements in procedures:
                assert statements[0].startswith("CREATE DATABASE"), statements
                for statement in statements:
                    conn.execute(re.sub(r"\b(warehouse_restored|warehouse|aggregator_backup)\b",
                                        lambda m: names[m.group(1)], statement))
                database = names["warehouse_restored"]
                check = "SELECT has_database_privilege(%s, %s, 'CONNECT')"
                assert conn.execute(check, (other, database)).fetchone() == (False,), statements
                assert conn.execute(check, (names["warehouse"], database)).fetchone() == (True,)
                assert conn.execute(check, (names["aggregator_backup"], database)).fetchone() == (True,)
                conn.execute(f"DROP DATABASE {database}")
        finally:
            conn.execute(f"DROP DATABASE IF EXISTS {names['warehouse_restored']}")
            for role in (names["warehouse"], names["aggregator_backup"], other):
                conn.execute(f"DROP ROLE IF EXISTS {role}")


def run_backup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(FILES / "backup.sh")], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def test_a_failed_dump_leaves_no_partial_file(pg_db: PgDatabase, pg_admin_url: str, tmp_path: Path) -> None:
    """Regression (issue 19, minor 12): a failed pg_dump left `*.dump.partial` files that pruning never removed.
    pg_dump creates its output file before it reads anything, so each failure below leaves one behind unless the
    script removes it: a database that does not exist, and a role that may not read one of the tables."""
    missing = {**libpq_env(pg_db.dsn), "BACKUP_DIR": str(tmp_path / "missing"),
               "BACKUP_DATABASES": f"no_such_database_{uuid.uuid4().hex[:8]}", "BACKUP_KEEP": "3"}
    backup = run_backup(missing)
    assert backup.returncode != 0 and "failed" in backup.stderr
    assert not list((tmp_path / "missing").rglob("*.partial"))

    role = f"nobackup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE readable (x int)")
        conn.execute("CREATE TABLE secret (x int)")
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
            conn.execute(f'GRANT CONNECT ON DATABASE "{pg_db.name}" TO {role}')
            conn.execute(f"GRANT SELECT ON readable TO {role}")
        denied = {**libpq_env(pg_db.dsn), "PGUSER": role, "BACKUP_DIR": str(tmp_path / "denied"),
                  "BACKUP_DATABASES": pg_db.name, "BACKUP_KEEP": "3"}
        backup = run_backup(denied)
        assert backup.returncode != 0 and "permission denied" in backup.stderr, backup.stderr
        assert (tmp_path / "denied" / pg_db.name).is_dir(), "the dump was under way"
        assert list((tmp_path / "denied").rglob("*")) == [tmp_path / "denied" / pg_db.name]
    finally:
        with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
            conn.execute(f"REVOKE ALL ON readable FROM {role}")
            conn.execute(f'REVOKE ALL ON DATABASE "{pg_db.name}" FROM {role}')
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_backups_are_copied_and_shipped_off_the_host(pg_db: PgDatabase, tmp_path: Path) -> None:
    """Regression (issue 19, minor 12): backups stayed on the host (or cluster) they protect. After each complete
    dump, backup.sh copies it to a second volume (BACKUP_COPY_DIR, pruned to the same count) and hands it to a
    ship command (object storage: `aws s3 cp "$1" "s3://…/$2"`); a failing ship fails the backup and keeps the
    local dump."""
    with psycopg.connect(pg_db.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        conn.execute("INSERT INTO orders SELECT generate_series(1, 100)")
    shipped = tmp_path / "bucket"
    shipped.mkdir()
    env = {**libpq_env(pg_db.dsn), "BACKUP_DIR": str(tmp_path / "local"), "BACKUP_DATABASES": pg_db.name,
           "BACKUP_KEEP": "1", "BACKUP_COPY_DIR": str(tmp_path / "second-volume"),
           # What `aws s3 cp "$1" "s3://bucket/$2"` receives: the dump's path and its name in the bucket.
           "BACKUP_SHIP_COMMAND": f'mkdir -p "{shipped}/$(dirname "$2")" && cp "$1" "{shipped}/$2"'}
    for _ in range(2):  # two runs with different timestamps: BACKUP_KEEP=1 prunes the first on both volumes
        backup = run_backup(env)
        assert backup.returncode == 0, backup.stderr
        (local,) = (tmp_path / "local" / pg_db.name).glob("*.dump")
        while local.name == f"{datetime.datetime.now(datetime.UTC):%Y%m%dT%H%M%SZ}.dump":
            time.sleep(0.05)  # the next run's timestamp (seconds) must differ
    (copied,) = (tmp_path / "second-volume" / pg_db.name).glob("*.dump")
    assert copied.name == local.name and copied.read_bytes() == local.read_bytes()
    assert (shipped / pg_db.name / local.name).read_bytes() == local.read_bytes()
    assert len(list((shipped / pg_db.name).glob("*.dump"))) == 2, "the bucket keeps its own history"

    failing = {**env, "BACKUP_SHIP_COMMAND": "echo 'upload refused' >&2; exit 7"}
    backup = run_backup(failing)
    assert backup.returncode != 0
    assert "BACKUP_SHIP_COMMAND failed" in backup.stderr and "upload refused" in backup.stderr
    assert list((tmp_path / "local" / pg_db.name).glob("*.dump")), "the local dump is kept"
    not_a_directory = tmp_path / "not-a-directory"
    not_a_directory.write_text("")
    broken_copy = {**env, "BACKUP_SHIP_COMMAND": "", "BACKUP_COPY_DIR": str(not_a_directory)}
    backup = run_backup(broken_copy)
    assert backup.returncode != 0 and "copying" in backup.stderr
    assert not list(tmp_path.rglob("*.partial"))
