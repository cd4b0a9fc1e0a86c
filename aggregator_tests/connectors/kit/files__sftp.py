"""The files connector's kit on SFTP: CSV files on a real SFTP server on loopback (aggregator_tests/sftp_server.py),
password login, host key pinned by known_hosts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aggregator_tests.connectors.kit import KitSource
from aggregator_tests.connectors.kit.files import part_writer
from aggregator_tests.sftp_server import running_sftp_server

WRONG_PASSWORD = "kit-wrong-password-never-shown"


@contextmanager
def source(tmp_path: Path, rows: int) -> Iterator[KitSource]:
    with running_sftp_server(tmp_path / "sftp") as server:
        base = server.root / "kit"
        base.mkdir()
        add_rows = part_writer(lambda name, body: (base / name).write_bytes(body))
        add_rows(range(1, rows + 1))
        stream = {"type": "file", "path": "*.csv", "batch_size": 500}
        options = {"password": {"env": "KIT_SFTP_PASSWORD"}, "known_hosts": {"env": "KIT_SFTP_KNOWN_HOSTS"}}
        config = {"base_dir": server.url("/kit"), "storage_options": options}
        wrong_password = {**config, "storage_options": {**options, "password": {"env": "KIT_SFTP_WRONG_PASSWORD"}}}
        unpinned = {**config, "storage_options": {"password": {"env": "KIT_SFTP_PASSWORD"},
                                                  "host_key_fingerprint": "SHA256:" + "A" * 43}}
        yield KitSource(
            config=config,
            stream=stream,
            incremental_stream=stream,
            add_rows=add_rows,
            environ={"KIT_SFTP_PASSWORD": server.password, "KIT_SFTP_KNOWN_HOSTS": server.known_hosts,
                     "KIT_SFTP_WRONG_PASSWORD": WRONG_PASSWORD},
            secrets=[server.password, WRONG_PASSWORD],
            # A refused password; a host key that is not the pinned one (the password is never sent).
            failing=[wrong_password, unpinned],
        )
