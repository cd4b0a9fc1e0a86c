"""The files connector's kit on Azure Blob Storage: CSV blobs in a container on Azurite (aggregator_tests/azurite.py),
read with the development account's key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator_tests.azurite import running_azurite
from aggregator_tests.connectors.kit import KitSource
from aggregator_tests.connectors.kit.files import part_writer

WRONG_KEY = "a2l0LXdyb25nLWFjY291bnQta2V5LW5ldmVyLXNob3du"


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    with running_azurite(tmp_path / "azurite") as azurite:
        container = azurite.new_container("kit")
        add_rows = part_writer(lambda name, body: azurite.put(container, f"kit/{name}", body))
        add_rows(range(1, rows + 1))
        stream = {"type": "file", "path": "*.csv", "batch_size": 500}
        options = {"account_name": {"env": "KIT_AZURE_ACCOUNT"}, "account_key": {"env": "KIT_AZURE_KEY"},
                   "endpoint_url": {"env": "KIT_AZURE_ENDPOINT"}}
        config = {"base_dir": f"az://{container}/kit", "storage_options": options}
        yield KitSource(
            config=config,
            stream=stream,
            incremental_stream=stream,
            add_rows=add_rows,
            environ={"KIT_AZURE_ACCOUNT": azurite.account, "KIT_AZURE_KEY": azurite.key,
                     "KIT_AZURE_ENDPOINT": azurite.endpoint, "KIT_AZURE_WRONG_KEY": WRONG_KEY},
            secrets=[azurite.key, WRONG_KEY],
            # A refused key; a container that does not exist.
            failing=[{**config, "storage_options": {**options, "account_key": {"env": "KIT_AZURE_WRONG_KEY"}}},
                     {**config, "base_dir": "az://no-such-container/kit"}],
        )
