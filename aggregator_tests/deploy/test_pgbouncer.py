"""PgBouncer as the chart renders it (issue 19, major 5).

- Regression: the rendered pgbouncer.ini offered clients no TLS while every documented URL says `sslmode=require`,
  so every client was refused. Measured here with Debian's PgBouncer running the rendered ini against the local
  PostgreSQL (addresses, the auth file and the certificate paths localised; server-side TLS set to `prefer`
  because the local server has no certificate): a `sslmode=require` client logs in with SCRAM and LISTENs.
- Regression: enabling PgBouncer switched every component's egress to PgBouncer only before the secrets pointed at
  it (an outage). Now `enabled` adds PgBouncer beside the direct route, and `exclusive` removes the direct route
  (run pods, code server and worker included) once the URLs point at PgBouncer.
"""

from __future__ import annotations

import base64
import datetime
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aggregator_tests.deploy.helm import render
from aggregator_tests.deploy.paths import DEPLOY
from aggregator_tests.deploy.pod_runtime import BWRAP
from aggregator_tests.deploy.test_chart import named
from aggregator_tests.deploy.test_network_policies import DATABASE_IP, DB_PORT, Endpoint, allowed
from aggregator_tests.postgres import PgDatabase
from aggregator_tests.processes import free_port, stop_group
from aggregator_tests.tools import needs_tool

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


def rendered(helm: Path, home: Path, *extra: str) -> list[dict]:
    return render(helm, home, "--set", "pgbouncer.enabled=true", *extra)


def test_clients_get_tls_from_the_mounted_certificate(helm: Path, tmp_path: Path) -> None:
    objects = rendered(helm, tmp_path)
    ini = named(objects, "ConfigMap", "aggregator-pgbouncer")["data"]["pgbouncer.ini"]
    settings = dict(re.findall(r"^(\w+) = (.*)$", ini, re.MULTILINE))
    assert settings["client_tls_sslmode"] == "require"
    pod = named(objects, "Deployment", "aggregator-pgbouncer")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for key in ("client_tls_key_file", "client_tls_cert_file"):
        (name,) = [n for n, path in mounts.items() if settings[key].startswith(path + "/")]
        assert volumes[name]["secret"]["secretName"] == "aggregator-pgbouncer-tls"
    assert not pod["containers"][0]["image"].startswith("bitnami/"), "Bitnami removed its versioned tags"


def test_enabling_keeps_the_direct_route_until_exclusive(helm: Path, tmp_path: Path) -> None:
    database = Endpoint("database", {}, DATABASE_IP, namespace=None)
    for exclusive in (False, True):
        objects = rendered(helm, tmp_path / str(exclusive), "--set", f"pgbouncer.exclusive={str(exclusive).lower()}")
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        pods = {o["metadata"]["name"]: (o["spec"]["jobTemplate"]["spec"] if o["kind"] == "CronJob" else o["spec"])
                ["template"]["metadata"]["labels"] for o in objects if o["kind"] in ("Deployment", "Job", "CronJob")}
        pgbouncer = Endpoint("pgbouncer", pods["aggregator-pgbouncer"], "10.1.0.50")
        run = Endpoint("run", {"app.kubernetes.io/component": "run_worker",
                               "app.kubernetes.io/part-of": "data-aggregator"}, "10.1.0.51")
        components = {name: Endpoint(name, labels, f"10.1.1.{i}") for i, (name, labels) in enumerate(pods.items())
                      if name not in ("aggregator-pgbouncer",)}
        components["run"] = run
        for name, pod in components.items():
            if name == "aggregator-backup":
                assert allowed(policies, pod, database, DB_PORT), "pg_dump always goes direct"
                continue
            assert allowed(policies, pod, pgbouncer, 6432), name
            assert allowed(policies, pod, database, DB_PORT) is not exclusive, (name, exclusive)
        assert allowed(policies, pgbouncer, database, DB_PORT)


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aggregator-pgbouncer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def scram_role(pg_admin_url: str) -> Iterator[tuple[str, str, str]]:
    """(role, password, SCRAM verifier) of a throwaway login role."""
    role, password = f"pgb_{secrets.token_hex(4)}", secrets.token_hex(12)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    assert row is not None
    try:
        yield role, password, row[0]
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")



@needs_tool(PGBOUNCER and BWRAP, "needs Debian's pgbouncer and bubblewrap")
def test_a_tls_client_logs_in_through_the_rendered_pgbouncer(helm: Path, tmp_path: Path, pg_db: PgDatabase,
                                                            scram_role: tuple[str, str, str]) -> None:
    role, password, _ = scram_role
    ini = named(rendered(helm, tmp_path / "helm"), "ConfigMap", "aggregator-pgbouncer")["data"]["pgbouncer.ini"]
    cert, key = _certificate(tmp_path)
    # The userlist line as docs/deploy.md makes it where pg_authid is unreadable (RDS): from the password.
    line = subprocess.run([sys.executable, str(DEPLOY / "bin" / "scram_verifier.py"), role], input=password,
                          capture_output=True, text=True, check=True, timeout=30).stdout
    (tmp_path / "userlist.txt").write_text(line)
    port = free_port()
    dbname = pg_db.dsn.rsplit("/", 1)[1].split("?")[0]
    local = (ini.replace("host=dagster-db.internal.example.com port=5432 dbname=dagster",
                         f"host=127.0.0.1 port=5432 dbname={dbname}")
             .replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
             .replace("listen_port = 6432", f"listen_port = {port}")
             .replace("/etc/pgbouncer/secret/userlist.txt", str(tmp_path / "userlist.txt"))
             .replace("/etc/pgbouncer/tls/tls.key", str(key)).replace("/etc/pgbouncer/tls/tls.crt", str(cert))
             .replace("server_tls_sslmode = require", "server_tls_sslmode = prefer"))
    assert f"dbname={dbname}" in local and str(cert) in local, "the localisation no longer matches the rendered ini"
    (tmp_path / "pgbouncer.ini").write_text(local)
    assert BWRAP is not None and PGBOUNCER is not None
    # PgBouncer refuses to run as root: as the pod's UID, in a user namespace.
    # Its log goes to a file: a pipe nobody reads can fill and block PgBouncer's only thread, and then the
    # SIGTERM below is never handled (CI: the stop timed out). The stop escalates to SIGKILL of the group.
    with open(tmp_path / "pgbouncer.log", "wb") as log:
        proc = subprocess.Popen([BWRAP, "--die-with-parent", "--unshare-user", "--uid", "1001", "--gid", "1001",
                                 "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run",
                                 "--", PGBOUNCER, str(tmp_path / "pgbouncer.ini")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"host=127.0.0.1 port={port} dbname=dagster user={role} password={password} sslmode=require"
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(url, connect_timeout=3)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        with conn:
            assert conn.info.pgconn.ssl_in_use
            assert conn.execute("SELECT current_user").fetchone() == (role,)
            conn.execute("LISTEN run_events")  # session pooling for the dagster database: LISTEN works
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url.replace(f"password={password}", "password=wrong"), connect_timeout=3).close()
    finally:
        stop_group(proc)


def test_the_scram_verifier_script_computes_what_postgresql_stores(scram_role: tuple[str, str, str]) -> None:
    """Differential: deploy/bin/scram_verifier.py, given PostgreSQL's salt and iterations, yields exactly the
    verifier PostgreSQL stored for the same password."""
    sys.path.insert(0, str(DEPLOY / "bin"))
    try:
        import scram_verifier
    finally:
        sys.path.remove(str(DEPLOY / "bin"))
    _, password, stored = scram_role
    iterations, salt = stored.split("$")[1].split(":")
    assert scram_verifier.verifier(password, base64.b64decode(salt), int(iterations)) == stored
    assert scram_verifier.verifier(password + "x", base64.b64decode(salt), int(iterations)) != stored
