"""The files connector on SFTP (password and key login) and Azure Blob Storage, each a real server on loopback:
check, discover, CSV and JSON Lines reads, incremental by modification time and by name, refused credentials
said without them, the egress rule on the server's address. The S3 equivalents are in test_files_s3.py."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import yaml

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.connectors.remote_stores import Store, azure_store, sftp_store
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.sftp_server import SftpServer
from connectors.egress import EgressError
from connectors.errors import SourceReadError
from connectors.files import FilesResource, FileStream


@pytest.fixture(params=["sftp-password", "sftp-key", "azure"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "azure":
        return azure_store(request.getfixturevalue("azurite"))
    server: SftpServer = request.getfixturevalue("sftp_server")
    return sftp_store(server, request.param.removeprefix("sftp-"))


def rows_of(first: int, count: int) -> list[dict[str, object]]:
    return [{"id": i, "sku": f"SKU-{i}", "price": i * 1.5} for i in range(first, first + count)]


def encode(fmt: str, rows: list[dict[str, object]]) -> bytes:
    if fmt == "csv":
        return ("id,sku,price\n" + "".join(f"{r['id']},{r['sku']},{r['price']}\n" for r in rows)).encode()
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_pipeline_loads_files_and_a_second_run_takes_only_new_ones(
    fmt: str, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    for name, value in store.env.items():
        monkeypatch.setenv(name, value)
    spec = {"connections": {"drop": {"type": "files", "config": {"base_dir": store.base_dir,
                                                                  "storage_options": store.spec_options}}},
            "pipelines": [{"name": "drop", "sources": [{
                "name": "orders", "connection": "drop", "write_mode": "append",
                "stream": {"type": "file", "path": f"orders/*.{fmt}", "incremental_by": "modified"}}]}]}
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "drop.yaml").write_text(yaml.safe_dump(spec))
    store.put(f"orders/a.{fmt}", encode(fmt, rows_of(1, 3)))
    store.put(f"orders/b.{fmt}", encode(fmt, rows_of(4, 2)))
    store.put(f"orders/nested/c.{fmt}", encode(fmt, rows_of(100, 1)))  # `*` stays in one directory
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_WAREHOUSE_URL": warehouse})

    def load() -> None:
        materialize_all(build_definitions(load_specs(specs, uploads_root=settings.uploads_root), settings), instance)

    load()
    assert query(warehouse, "SELECT id, sku, price FROM drop_orders ORDER BY id") == [
        (r["id"], r["sku"], r["price"]) for r in rows_of(1, 5)]
    store.put(f"orders/c.{fmt}", encode(fmt, rows_of(6, 2)))
    load()
    assert [row[0] for row in query(warehouse, "SELECT id FROM drop_orders ORDER BY id")] == [1, 2, 3, 4, 5, 6, 7]
    load()  # nothing new: nothing loaded, nothing fails
    assert query(warehouse, "SELECT COUNT(*) FROM drop_orders") == [(7,)]


@pytest.mark.parametrize("rule", ["files", "modified", "name"])
def test_incremental_rules_read_each_file_once(rule: str, store: Store) -> None:
    files = store.resource()
    stream = FileStream.model_validate({"path": "day=*/*.csv", "incremental_by": rule})
    store.put("day=2026-12-01/orders.csv", encode("csv", rows_of(1, 2)))
    store.put("day=2026-12-02/orders.csv", encode("csv", rows_of(3, 2)))
    batches = list(files.read(stream))
    assert [b.origin for b in batches] == [f"{store.base_dir}/day=2026-12-0{d}/orders.csv" for d in (1, 2)]
    state = batches[-1].state
    assert state is not None
    assert list(files.read(stream, state=state)) == []
    store.put("day=2026-12-03/orders.csv", encode("csv", rows_of(5, 1)))
    (new,) = list(files.read(stream, state=state))
    assert new.origin.endswith("day=2026-12-03/orders.csv") and len(new) == 1
    assert new.state is not None and list(files.read(stream, state=new.state)) == []


def test_check_discover_and_globbing(store: Store) -> None:
    store.put("a.jsonl", encode("jsonl", rows_of(1, 1)))
    store.put("deep/er/b.jsonl", encode("jsonl", rows_of(2, 1)))
    store.put("deep/c.csv", encode("csv", rows_of(3, 1)))
    files = store.resource()
    assert [e.name for e in files.files(FileStream(path="**/*.jsonl"))] == ["a.jsonl", "deep/er/b.jsonl"]
    infos = {i.name: i for i in files.discover()}
    assert sorted(infos) == ["a.jsonl", "deep/c.csv", "deep/er/b.jsonl"]
    assert set(infos["deep/c.csv"].columns) == {"id", "sku", "price"}
    assert files.check() == f"{store.base_dir}: readable, 3 files"


def test_refused_credentials_fail_clearly_and_are_never_said(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.put("a.csv", encode("csv", rows_of(1, 1)))
    caplog.set_level(logging.DEBUG)  # paramiko and the Azure SDK log at debug: none of it may hold a credential
    files = store.resource(**store.wrong)
    with pytest.raises(SourceReadError) as failure:
        list(files.read(FileStream(path="*.csv")))
    message = str(failure.value)
    assert "access denied" in message and "storage_options" in message and store.base_dir in message
    with pytest.raises(SourceReadError, match="access denied"):
        files.check()
    assert store.secrets and not [s for s in store.secrets if s in message or s in caplog.text]
    list(store.resource().read(FileStream(path="*.csv")))  # the right credentials, logged at debug too
    assert not [s for s in store.secrets if s in caplog.text]


def test_check_fails_for_a_missing_directory_or_container(store: Store) -> None:
    sftp = store.base_dir.startswith("sftp://")
    missing = store.base_dir + "/no-such-dir-here" if sftp else "az://no-such-container/x"
    with pytest.raises(SourceReadError, match="no such bucket or directory"):
        FilesResource(base_dir=missing, storage_options=store.options).check()


def test_a_server_outside_the_allowed_networks_is_refused(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATOR_ALLOWED_NETWORKS", "10.99.0.0/16")
    with pytest.raises(EgressError, match="storage endpoint 127.0.0.1.*AGGREGATOR_ALLOWED_NETWORKS"):
        store.resource().check()


def test_a_bad_row_names_the_remote_file(store: Store) -> None:
    store.put("bad.csv", b"id,sku\n1,a\n2,b,extra\n")
    with pytest.raises(SourceReadError, match=f"{store.base_dir}/bad.csv:3") as failure:
        list(store.resource().read(FileStream(path="bad.csv")))
    assert "aggregator-files-" not in str(failure.value)
