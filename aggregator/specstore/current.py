"""The specs a process should load now: what every component calls (code server, worker, proxy replicas).

The store is the record. A process with a specs directory of its own (AGGREGATOR_PIPELINES set to anything but
the bundled samples) first syncs that directory with the store (directory.py), so files stay first-class.
A store that holds nothing yet is seeded once from the specs directory (the bundled samples by default), so a
first start shows the samples as it always did.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.settings import EXAMPLE_PIPELINES_DIR, Settings
from aggregator.specstore.directory import DirectorySync, read_directory
from aggregator.specstore.store import Snapshot, SpecDb, StoreConflict

log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def spec_engine(url: str) -> Engine:
    """One engine per URL and process, with the platform database's schema brought forward once."""
    from aggregator.proxy.storage.db import make_engine, migrate  # the platform database's migrations

    with _engines_lock:
        if url not in _engines:
            engine = make_engine(url)
            for attempt in range(5):
                try:
                    migrate(engine)
                    break
                except sa.exc.SQLAlchemyError as exc:
                    # Two processes migrating a fresh database at once: the loser retries and finds it done. A
                    # reader whose role may not create tables finds them made by the proxy or the migrate job.
                    if sa.inspect(engine).has_table("spec_store_files"):
                        break
                    if attempt == 4:
                        raise
                    log.info("spec store schema not ready (%s); retrying", type(exc).__name__)
                    time.sleep(0.2 * (attempt + 1))
            _engines[url] = engine
        return _engines[url]


def open_spec_db(settings: Settings) -> SpecDb:
    return SpecDb(spec_engine(settings.spec_store_url))


def local_directory(settings: Settings) -> Path | None:
    """The specs directory this process keeps in step with the store, if it has one of its own."""
    root = settings.pipelines_dir
    return None if root.resolve() == EXAMPLE_PIPELINES_DIR.resolve() else root


def seed_if_empty(db: SpecDb, root: Path, username: str) -> None:
    """An empty store gets the specs directory (the samples when none is configured), once."""
    if db.head() != 0:
        return
    texts = read_directory(root)
    try:
        db.commit(texts, 0, username, "seed")
    except StoreConflict:
        return  # another process seeded it first
    except sa.exc.SQLAlchemyError as exc:  # a read-only role: the migrate job applies the specs instead
        log.warning("the spec store is empty and this process may not seed it (%s)", type(exc).__name__)


def current(settings: Settings, username: str = "directory", db: SpecDb | None = None) -> Snapshot:
    """The store's newest revision, after syncing this process's own specs directory (if any) into it."""
    db = db or open_spec_db(settings)
    root = local_directory(settings)
    if root is not None and root.is_dir():
        DirectorySync(db, root, settings.home).sync(username, writable=os.access(root, os.W_OK))
    elif root is None:
        seed_if_empty(db, settings.pipelines_dir, username)
    return db.snapshot()


def current_snapshot(settings: Settings) -> Snapshot | None:
    """The newest specs, or None when a configured specs directory is not a directory: missing (the loader
    then reports it as it always has) or one spec file named directly (read as it is)."""
    root = local_directory(settings)
    if root is not None and not root.is_dir():
        return None
    return current(settings)


def current_texts(settings: Settings) -> dict[Path, str] | None:
    """What the loader takes: the newest specs as texts under the specs directory (None: read the files)."""
    snap = current_snapshot(settings)
    return None if snap is None else snap.texts(settings.pipelines_dir)
