"""az:// uses only the credential and endpoint the connection states: Azurite on loopback
(aggregator_tests/azurite.py), the docs page's example run against it."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator_tests.azurite import Azurite
from connectors.errors import ConnectorConfigError
from connectors.files import FilesResource, FileStream
from connectors.secrets import Resolver

DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "azure.md"


@pytest.fixture
def container(azurite: Azurite) -> str:
    name = azurite.new_container()
    azurite.put(name, "exports/orders.jsonl", b'{"id": 1, "sku": "a"}\n{"id": 2, "sku": "b"}\n')
    return name


def options(azurite: Azurite, **extra: str) -> dict[str, str]:
    return {"account_name": azurite.account, "endpoint_url": azurite.endpoint, **extra}


def test_a_sas_token_reads_the_container(azurite: Azurite, container: str) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(azurite.account, container, account_key=azurite.key,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    files = FilesResource(base_dir=f"az://{container}/exports", storage_options=options(azurite, sas_token=sas))
    assert [len(b) for b in files.read(FileStream(path="*.jsonl"))] == [2]


def test_ambient_azure_credentials_are_never_used(
    azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adlfs reads AZURE_STORAGE_CONNECTION_STRING (and others) from the environment before its arguments; a
    connection must read with what it states, whatever the process running the load happens to hold."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=elsewhere;AccountKey=bm90LXRoaXMtb25l;"
                       "BlobEndpoint=http://127.0.0.1:9/elsewhere")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "elsewhere")
    files = FilesResource(base_dir=f"az://{container}/exports", storage_options=options(azurite, account_key=azurite.key))
    assert files.check() == f"az://{container}/exports: readable, 1 files"
    with pytest.raises(ConnectorConfigError, match="set exactly one of account_key and sas_token"):
        FilesResource(base_dir=f"az://{container}/exports", storage_options=options(azurite)).check()


def test_options_are_checked(azurite: Azurite, container: str) -> None:
    with pytest.raises(ValueError, match="connection_string not understood for az:// locations; allowed: account_name"):
        FilesResource(base_dir=f"az://{container}/x", storage_options={"connection_string": "x"})
    with pytest.raises(ConnectorConfigError, match="account_name is required"):
        FilesResource(base_dir=f"az://{container}/x", storage_options={"account_key": azurite.key}).check()
    with pytest.raises(ConnectorConfigError, match="set exactly one of account_key and sas_token"):
        FilesResource(base_dir=f"az://{container}/x",
                      storage_options=options(azurite, account_key=azurite.key, sas_token="sv=1")).check()
    with pytest.raises(ConnectorConfigError, match="endpoint_url 'ftp://x' is not an http"):
        FilesResource(base_dir=f"az://{container}/x",
                      storage_options={"account_name": "a", "account_key": "k", "endpoint_url": "ftp://x"}).check()


def docs_connection() -> dict[str, Any]:
    """The first connection example of docs/connectors/azure.md."""
    block = re.search(r"^```yaml\n(.*?)^```", DOCS.read_text(), re.DOTALL | re.MULTILINE)
    assert block is not None
    config: dict[str, Any] = yaml.safe_load(block.group(1))["connection"]["config"]
    return config


def test_the_docs_example_reads_from_azurite(azurite: Azurite, container: str) -> None:
    """docs/connectors/azure.md's connection, {env: NAME}s set, its container swapped for the test's and Azurite's
    endpoint added (the example reaches Azure itself)."""
    config = docs_connection()
    env = {"DROPS_AZURE_ACCOUNT": azurite.account, "DROPS_AZURE_KEY": azurite.key}
    assert {o["env"] for o in config["storage_options"].values()} == set(env)
    resolved = Resolver(env).resolve(config["storage_options"], "docs example")
    base = config["base_dir"].replace("partner-drops", container)
    files = FilesResource(base_dir=base, storage_options={**resolved, "endpoint_url": azurite.endpoint})
    assert [len(b) for b in files.read(FileStream(path="**/*.jsonl", incremental_by="modified"))] == [2]
