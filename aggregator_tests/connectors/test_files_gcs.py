"""The files connector on Google Cloud Storage: a real GCS JSON-API server on loopback (gcp-storage-emulator)
read through gcsfs into a warehouse, incremental, with a service-account key exchanged at a real token endpoint;
and the platform's own Google credentials never used for a connection that names none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.connectors.test_files_s3 import encode, rows_of
from aggregator_tests.gcs_server import GcsServer, TokenEndpoint, running_gcs_server, token_endpoint
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from connectors.egress import EgressError
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.files import FilesResource, FileStream

SPEC = """
connections:
  lake:
    type: files
    config:
      base_dir: gs://{bucket}/exports
      storage_options:
        endpoint_url: {{env: TEST_GCS_ENDPOINT}}
        credentials_json: {{env: TEST_GCS_KEY_JSON}}
pipelines:
  - name: lake
    sources:
      - name: orders
        connection: lake
        stream: {{type: file, path: "orders/*.{fmt}", incremental_by: modified}}
        write_mode: append
"""


@pytest.fixture(scope="module")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    with running_gcs_server(tmp_path_factory.mktemp("gcs-server")) as server:
        yield server


@pytest.fixture
def bucket(gcs_server: GcsServer) -> str:
    return gcs_server.new_bucket()


@pytest.fixture
def key() -> Iterator[TokenEndpoint]:
    with token_endpoint() as endpoint:
        yield endpoint


def put(gcs: GcsServer, bucket: str, name: str, body: bytes) -> None:
    gcs.filesystem().pipe(f"{bucket}/exports/{name}", body)


def resource(gcs: GcsServer, bucket: str, **options: str) -> FilesResource:
    return FilesResource(base_dir=f"gs://{bucket}/exports",
                         storage_options={"endpoint_url": gcs.endpoint, **(options or {"anon": "true"})})


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_loads_objects_with_a_service_account_and_a_second_run_takes_only_new_ones(
    fmt: str, gcs_server: GcsServer, bucket: str, key: TokenEndpoint, tmp_path: Path, warehouse_url: str,
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_GCS_ENDPOINT", gcs_server.endpoint)
    monkeypatch.setenv("TEST_GCS_KEY_JSON", key.key_json)
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "lake.yaml").write_text(SPEC.format(bucket=bucket, fmt=fmt))
    put(gcs_server, bucket, f"orders/a.{fmt}", encode(fmt, rows_of(1, 3)))
    put(gcs_server, bucket, f"orders/nested/c.{fmt}", encode(fmt, rows_of(100, 1)))  # `*` stays in one directory
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_WAREHOUSE_URL": warehouse_url})

    def load() -> None:
        materialize_all(build_definitions(load_specs(spec_dir, uploads_root=settings.uploads_root), settings),
                        instance)

    load()
    assert query(warehouse_url, "SELECT id, sku, price FROM lake_orders ORDER BY id") == [
        (r["id"], r["sku"], r["price"]) for r in rows_of(1, 3)]
    put(gcs_server, bucket, f"orders/b.{fmt}", encode(fmt, rows_of(4, 2)))
    load()
    assert [row[0] for row in query(warehouse_url, "SELECT id FROM lake_orders ORDER BY id")] == [1, 2, 3, 4, 5]
    # The key was exchanged at its token endpoint for a read-only token, never anything wider.
    assert key.grants and {g["scope"] for g in key.grants} == {"https://www.googleapis.com/auth/devstorage.read_only"}
    assert all(g["iss"] == "loader@test.iam.gserviceaccount.com" for g in key.grants)


@pytest.mark.parametrize("rule", ["files", "modified", "name"])
def test_incremental_rules_read_each_object_once(rule: str, gcs_server: GcsServer, bucket: str) -> None:
    files = resource(gcs_server, bucket)
    stream = FileStream.model_validate({"path": "day=*/*.csv", "incremental_by": rule})
    put(gcs_server, bucket, "day=2026-12-01/orders.csv", encode("csv", rows_of(1, 2)))
    put(gcs_server, bucket, "day=2026-12-02/orders.csv", encode("csv", rows_of(3, 2)))
    batches = list(files.read(stream))
    assert [b.origin for b in batches] == [f"gs://{bucket}/exports/day=2026-12-0{d}/orders.csv" for d in (1, 2)]
    state = batches[-1].state
    assert state is not None and list(files.read(stream, state=state)) == []
    put(gcs_server, bucket, "day=2026-12-03/orders.csv", encode("csv", rows_of(5, 1)))
    (new,) = list(files.read(stream, state=state))
    assert new.origin.endswith("day=2026-12-03/orders.csv") and len(new) == 1


def test_globbing_discover_and_check(gcs_server: GcsServer, bucket: str) -> None:
    put(gcs_server, bucket, "a.jsonl", encode("jsonl", rows_of(1, 1)))
    put(gcs_server, bucket, "deep/er/b.jsonl", encode("jsonl", rows_of(2, 1)))
    put(gcs_server, bucket, "deep/c.csv", encode("csv", rows_of(3, 1)))
    files = resource(gcs_server, bucket)
    assert [e.name for e in files.files(FileStream(path="**/*.jsonl"))] == ["a.jsonl", "deep/er/b.jsonl"]
    assert sorted(i.name for i in files.discover()) == ["a.jsonl", "deep/c.csv", "deep/er/b.jsonl"]
    assert files.check() == f"gs://{bucket}/exports: readable, 3 files"


def test_a_refused_key_fails_the_read_without_the_key(gcs_server: GcsServer, bucket: str, key: TokenEndpoint) -> None:
    put(gcs_server, bucket, "a.csv", encode("csv", rows_of(1, 1)))
    key.refuse = True
    with pytest.raises(SourceReadError) as error:
        resource(gcs_server, bucket, credentials_json=key.key_json).check()
    message = str(error.value)
    assert f"gs://{bucket}/exports" in message and "access denied" in message, message
    assert "PRIVATE KEY" not in message and key.key_json[200:260] not in message


def test_bad_keys_and_options_are_refused_clearly(gcs_server: GcsServer, bucket: str) -> None:
    with pytest.raises(ConnectorConfigError, match="credentials_json is not JSON"):
        resource(gcs_server, bucket, credentials_json="{not json").check()
    with pytest.raises(ConnectorConfigError, match="must be a service account key"):
        resource(gcs_server, bucket, credentials_json='{"type": "authorized_user"}').check()
    with pytest.raises(ConnectorConfigError, match="not understood for gs:// locations; allowed: endpoint_url"):
        resource(gcs_server, bucket, anon="true", key="x").check()


def test_a_connection_without_a_credential_never_uses_the_platforms_own(
    gcs_server: GcsServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGGREGATOR_AMBIENT_CREDENTIALS", raising=False)
    bare = FilesResource(base_dir=f"gs://{bucket}/exports", storage_options={"endpoint_url": gcs_server.endpoint})
    with pytest.raises(ConnectorConfigError, match=r"name no credential .*AGGREGATOR_AMBIENT_CREDENTIALS=gs"):
        bare.check()


def test_the_token_endpoint_obeys_the_egress_rule(
    gcs_server: GcsServer, bucket: str, key: TokenEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key names the URL its token is fetched from: it must be one connectors may reach, like the storage."""
    files = resource(gcs_server, bucket, credentials_json=key.key_json.replace(
        "127.0.0.1", "169.254.169.254"))
    with pytest.raises(EgressError, match="token_uri"):
        files.check()
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "10.99.0.0/16")
    with pytest.raises(EgressError, match="storage endpoint 127.0.0.1.*AGGREGATOR_ALLOWED_NETWORKS"):
        resource(gcs_server, bucket).check()
