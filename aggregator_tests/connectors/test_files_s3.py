"""The files connector on object storage: a real S3-compatible server on loopback (moto's, with authentication),
read through fsspec into SQLite and PostgreSQL warehouses, incremental by modification time and by name."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.s3_server import S3Server
from connectors.egress import EgressError
from connectors.errors import SourceReadError
from connectors.files import FilesResource, FileStream

SPEC = """
connections:
  lake:
    type: files
    config:
      base_dir: s3://{bucket}/exports
      storage_options:
        endpoint_url: {{env: TEST_S3_ENDPOINT}}
        key: {{env: TEST_S3_KEY}}
        secret: {{env: TEST_S3_SECRET}}
pipelines:
  - name: lake
    sources:
      - name: orders
        connection: lake
        stream: {{type: file, path: "orders/*.{fmt}", incremental_by: modified}}
        write_mode: append
"""


def rows_of(first: int, count: int) -> list[dict[str, object]]:
    return [{"id": i, "sku": f"SKU-{i}", "price": i * 1.5} for i in range(first, first + count)]


def encode(fmt: str, rows: list[dict[str, object]]) -> bytes:
    if fmt == "csv":
        return ("id,sku,price\n" + "".join(f"{r['id']},{r['sku']},{r['price']}\n" for r in rows)).encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    yield s3_server.new_bucket()


def resource(s3: S3Server, bucket: str, **options: str) -> FilesResource:
    opts = {"endpoint_url": s3.endpoint, "key": s3.access_key, "secret": s3.secret_key, **options}
    return FilesResource(base_dir=f"s3://{bucket}/exports", storage_options=opts)


def put(s3: S3Server, bucket: str, key: str, body: bytes) -> None:
    s3.client().put_object(Bucket=bucket, Key=f"exports/{key}", Body=body)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_loads_objects_and_a_second_run_takes_only_new_ones(
    fmt: str, s3_env: S3Server, bucket: str, tmp_path: Path, warehouse_url: str, instance: dg.DagsterInstance
) -> None:
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "lake.yaml").write_text(SPEC.format(bucket=bucket, fmt=fmt))
    put(s3_env, bucket, f"orders/a.{fmt}", encode(fmt, rows_of(1, 3)))
    put(s3_env, bucket, f"orders/b.{fmt}", encode(fmt, rows_of(4, 2)))
    put(s3_env, bucket, f"orders/nested/c.{fmt}", encode(fmt, rows_of(100, 1)))  # `*` stays in one directory
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_WAREHOUSE_URL": warehouse_url})

    def load() -> None:
        materialize_all(build_definitions(load_specs(spec_dir, uploads_root=settings.uploads_root), settings),
                        instance)

    load()
    assert query(warehouse_url, "SELECT id, sku, price FROM lake_orders ORDER BY id") == [
        (r["id"], r["sku"], r["price"]) for r in rows_of(1, 5)]
    put(s3_env, bucket, f"orders/c.{fmt}", encode(fmt, rows_of(6, 2)))
    load()
    ids = [row[0] for row in query(warehouse_url, "SELECT id FROM lake_orders ORDER BY id")]
    assert ids == [1, 2, 3, 4, 5, 6, 7]  # the new object once, the old ones not again
    load()  # nothing new: nothing loaded, nothing fails
    assert query(warehouse_url, "SELECT COUNT(*) FROM lake_orders") == [(7,)]


@pytest.mark.parametrize("rule", ["files", "modified", "name"])
def test_incremental_rules_read_each_object_once(rule: str, s3_server: S3Server, bucket: str) -> None:
    files = resource(s3_server, bucket)
    stream = FileStream.model_validate({"path": "day=*/*.csv", "incremental_by": rule})
    put(s3_server, bucket, "day=2026-12-01/orders.csv", encode("csv", rows_of(1, 2)))
    put(s3_server, bucket, "day=2026-12-02/orders.csv", encode("csv", rows_of(3, 2)))
    batches = list(files.read(stream))
    assert [b.origin for b in batches] == [f"s3://{bucket}/exports/day=2026-12-0{d}/orders.csv" for d in (1, 2)]
    state = batches[-1].state
    assert state is not None
    assert list(files.read(stream, state=state)) == []
    put(s3_server, bucket, "day=2026-12-03/orders.csv", encode("csv", rows_of(5, 1)))
    (new,) = list(files.read(stream, state=state))
    assert new.origin.endswith("day=2026-12-03/orders.csv") and len(new) == 1
    assert new.state is not None and list(files.read(stream, state=new.state)) == []


def test_globbing_with_double_star_and_discover(s3_server: S3Server, bucket: str) -> None:
    put(s3_server, bucket, "a.jsonl", encode("jsonl", rows_of(1, 1)))
    put(s3_server, bucket, "deep/er/b.jsonl", encode("jsonl", rows_of(2, 1)))
    put(s3_server, bucket, "deep/c.csv", encode("csv", rows_of(3, 1)))
    files = resource(s3_server, bucket)
    assert [e.name for e in files.files(FileStream(path="**/*.jsonl"))] == ["a.jsonl", "deep/er/b.jsonl"]
    infos = {i.name: i for i in files.discover()}
    assert sorted(infos) == ["a.jsonl", "deep/c.csv", "deep/er/b.jsonl"]
    assert set(infos["deep/c.csv"].columns) == {"id", "sku", "price"}
    assert files.check() == f"s3://{bucket}/exports: readable, 3 files"


def test_bad_credentials_fail_clearly_without_the_secret(s3_server: S3Server, bucket: str) -> None:
    put(s3_server, bucket, "a.csv", encode("csv", rows_of(1, 1)))
    key, secret = "AKIAWRONGKEY1234", "wrong-secret-value-never-shown"
    files = resource(s3_server, bucket, key=key, secret=secret)
    with pytest.raises(SourceReadError) as failure:
        list(files.read(FileStream(path="*.csv")))
    message = str(failure.value)
    assert "access denied" in message and "storage_options" in message and f"s3://{bucket}/exports" in message
    assert secret not in message and key not in message
    with pytest.raises(SourceReadError, match="access denied"):
        files.check()


def test_a_bad_row_names_the_object_not_the_temporary_copy(
    s3_server: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    put(s3_server, bucket, "bad.csv", b"id,sku\n1,a\n2,b,extra\n")
    with pytest.raises(SourceReadError, match=rf"s3://{bucket}/exports/bad.csv:3") as failure:
        list(resource(s3_server, bucket).read(FileStream(path="bad.csv")))
    assert "aggregator-files-" not in str(failure.value)
    skipped = list(resource(s3_server, bucket).read(FileStream(path="bad.csv", on_bad_row="skip")))
    assert sum(len(b) for b in skipped) == 1
    assert f"skipped bad row s3://{bucket}/exports/bad.csv:3" in caplog.text


def test_check_tells_a_missing_bucket_from_an_empty_prefix(s3_server: S3Server, bucket: str) -> None:
    assert resource(s3_server, bucket).check() == f"s3://{bucket}/exports: readable, 0 files"
    missing = FilesResource(base_dir="s3://no-such-bucket-here/x", storage_options={
        "endpoint_url": s3_server.endpoint, "key": s3_server.access_key, "secret": s3_server.secret_key})
    with pytest.raises(SourceReadError, match="s3://no-such-bucket-here/x: no such bucket"):
        missing.check()


def test_an_endpoint_outside_the_allowed_networks_is_refused(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "10.99.0.0/16")
    with pytest.raises(EgressError, match="storage endpoint 127.0.0.1.*AGGREGATOR_ALLOWED_NETWORKS"):
        resource(s3_server, bucket).check()


def test_storage_options_are_checked(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not understood for s3:// locations; allowed: endpoint_url"):
        resource(s3_server, bucket, colour="blue").check()
    with pytest.raises(ValueError, match="storage_options apply to object storage"):
        FilesResource(base_dir=str(tmp_path), storage_options={"key": "x"}).check()
    with pytest.raises(ValueError, match="scheme ftp:// is not supported"):
        FilesResource(base_dir="ftp://host/x").check()



def test_a_connection_without_a_credential_never_uses_the_platforms_own(
    s3_server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process has working AWS credentials (as a run pod's role for the compute-log bucket): a connection
    that names none must not read with them, unless the operator allows it for s3."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.delenv("AGGREGATOR_AMBIENT_CREDENTIALS", raising=False)
    bare = FilesResource(base_dir=f"s3://{bucket}/exports", storage_options={"endpoint_url": s3_server.endpoint})
    with pytest.raises(ValueError, match=r"name no credential .* set key and secret .*AGGREGATOR_AMBIENT_CREDENTIALS=s3"):
        bare.check()
    monkeypatch.setenv("AGGREGATOR_AMBIENT_CREDENTIALS", "gs, s3")
    assert bare.check() == f"s3://{bucket}/exports: readable, 0 files"


@pytest.mark.parametrize(("base", "endpoint", "allowed"), [
    ("s3://up/root/sales", "http://127.0.0.1:9000", True),       # under the uploads prefix, its endpoint
    ("s3://up/root", "http://127.0.0.1:9000", True),
    ("s3://up/rootless", "http://127.0.0.1:9000", False),        # a sibling prefix that only starts alike
    ("s3://up/other", "http://127.0.0.1:9000", False),
    ("s3://up/root/sales", "http://attacker.example:9000", False),  # signed requests would go elsewhere
    ("s3://up/root/sales", None, False),
])
def test_only_the_uploads_bucket_at_its_endpoint_reads_with_the_platforms_credentials(
    base: str, endpoint: str | None, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.files.credentials import ambient_credentials_allowed

    monkeypatch.delenv("AGGREGATOR_AMBIENT_CREDENTIALS", raising=False)
    monkeypatch.setenv("AGGREGATOR_UPLOADS_URL", "s3://up/root")
    monkeypatch.setenv("AGGREGATOR_UPLOADS_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    options = {"endpoint_url": endpoint} if endpoint else {}
    assert ambient_credentials_allowed("s3", base, options) is allowed
