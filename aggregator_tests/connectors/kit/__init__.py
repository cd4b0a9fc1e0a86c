"""The connector conformance kit: what every connector type proves (test_conformance.py runs it).

A connector type takes part by providing one module here named for it (`kit/<type>.py`, the declared hook)
with a `source(tmp_path, rows)` context manager that starts a real system on loopback (a server, files, a
database) holding `rows` kit rows, and yields a `KitSource`. A registered type without one fails
`test_every_registered_type_has_a_kit`; see docs/connectors/write-a-connector.md. A type that reaches several
kinds of system adds a variant per kind, `kit/<type>__<variant>.py` (the files connector on SFTP and Azure
Blob Storage), run by the same tests."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


def kit_row(i: int) -> dict[str, Any]:
    """Row `i` of every kit source: an integer key and a text column (the columns the kit checks)."""
    return {"id": i, "name": f"row {i}"}


@dataclass
class KitSource:
    """A live source of kit rows for one connector type."""

    config: dict[str, Any]  # the connection's `config:`; credentials as {env: NAME}, never inline
    stream: dict[str, Any]  # a `stream:` reading every row (kit_row columns: id, name)
    incremental_stream: dict[str, Any]  # a stream whose loads keep state: a second load reads only new rows
    add_rows: Callable[[range], None]  # append kit rows with these ids to the source
    environ: dict[str, str] = field(default_factory=dict)  # the variables the {env: NAME}s read
    secrets: list[str] = field(default_factory=list)  # credential values (and parts of them) no error may hold
    # Connection configs (credentials still in use) that reach nothing, or the wrong thing: check/read fail.
    failing: list[dict[str, Any]] = field(default_factory=list)
    # Reads that acknowledge take the rows away (a queue): the memory test refills the source between reads.
    consumed_by_reads: bool = False
    # False for a source that cannot sample without consuming (MQTT): discovery must then refuse, saying what
    # to do instead, rather than take messages a load needs.
    discovers: bool = True


class Kit(Protocol):
    def __call__(self, tmp_path: Path, rows: int) -> AbstractContextManager[KitSource]: ...


def kit_for(kit: str) -> Kit:
    """The `source` hook of `kit/<kit>.py`; ModuleNotFoundError when there is no such kit."""
    module = importlib.import_module(f"{__name__}.{kit}")
    hook: Kit = module.source
    return hook


def memory_rows(kit: str) -> tuple[int, int]:
    """The two source sizes the memory test compares: `MEMORY_ROWS` of the kit module, if it sets one (a broker
    whose every message is a round trip to publish), else 20,000 and 200,000. Ten times as many either way."""
    module = importlib.import_module(f"{__name__}.{kit}")
    small, large = getattr(module, "MEMORY_ROWS", (20_000, 200_000))
    assert large >= 10 * small, "the memory test compares a source with one ten times its size"
    return int(small), int(large)


def connector_of(kit: str) -> str:
    """The connector type a kit runs: `files__sftp` (a variant: the same type on another system) runs `files`."""
    return kit.split("__", 1)[0]


def kit_names() -> list[str]:
    """Every kit in this package: one per connector type (`<type>.py`) and its variants (`<type>__<variant>.py`)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]))


__all__ = ["Iterator", "Kit", "KitSource", "connector_of", "kit_for", "kit_names", "kit_row", "memory_rows"]
