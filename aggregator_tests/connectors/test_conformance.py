"""The connector conformance kit: every registered connector type proves the same contract on a real system.

Parametrized over `connectors.registry.CONNECTOR_TYPES`; each type brings its live source through the one hook
`aggregator_tests/connectors/kit/<type>.py` (see kit/__init__.py and docs/connectors/write-a-connector.md), and
each variant `kit/<type>__<variant>.py` (the same type on another system: files on SFTP, on Azure Blob Storage),
so a newly registered type is held to all of this without editing this file:

* check, discover (columns and portable types), read (every row, exactly);
* incremental: a load from the committed state reads only rows added since;
* exactly once under a killed step: the run worker is SIGKILLed mid-load, the rerun commits each row once;
* secrets never in errors: failing checks and reads name what failed, never a credential;
* bounded memory: peak RSS does not grow with the size of the source.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator.pipelines.connections import Connection, build_source
from aggregator_tests.connectors.kit import KitSource, connector_of, kit_for, kit_names, kit_row, memory_rows
from aggregator_tests.process_env import platform_env
from connectors.batches import ColumnType
from connectors.errors import ConnectorConfigError
from connectors.redact import is_secret_key
from connectors.registry import CONNECTOR_TYPES
from connectors.secrets import Resolver
from connectors.source import Source
from connectors.sql.engines import dispose_engines
from connectors.streams.base import Acknowledging

REPO = Path(__file__).resolve().parents[2]
ROWS = 2_000
# Registered before the kit existed and not yet given one (message streams: their kit publishes kit rows as
# messages). The set may only shrink: the test below fails on a stale entry as on a new type without a kit.
WITHOUT_KIT_YET: set[str] = set()


def has_kit(connector: str) -> bool:
    try:
        kit_for(connector)
    except ModuleNotFoundError:
        return False
    return True


# Every kit of a registered type (and its variants: files on SFTP, on Azure) runs every test below.
KITS = [name for name in kit_names() if connector_of(name) in CONNECTOR_TYPES]


@pytest.fixture(params=KITS)
def kit_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connector(kit_name: str) -> str:
    return connector_of(kit_name)


# Sources a test built: closed when its kit stops, as a run's resources are torn down after the run.
_OPENED: list[Any] = []


@pytest.fixture
def kit(kit_name: str, tmp_path: Path) -> Iterator[KitSource]:
    with kit_for(kit_name)(tmp_path, ROWS) as live:
        try:
            yield live
        finally:
            while _OPENED:
                close = getattr(_OPENED.pop(), "close", None)
                if close is not None:
                    close()
            dispose_engines()  # pooled connections into the kit's database, which the kit drops


def source_for(connector: str, config: dict[str, Any], environ: dict[str, str]) -> Source[Any]:
    """The connection as a run builds it, its {env: NAME}s resolved from `environ`."""
    conn = Connection.model_validate({"type": connector, "config": config})
    source = build_source(conn, f"kit_{connector}", Resolver(environ))
    _OPENED.append(source)
    return source


def stream_of(connector: str, stream: dict[str, Any]) -> Any:
    return CONNECTOR_TYPES[connector].stream_model.model_validate(stream)


def read_rows(source: Source[Any], stream: Any, state: dict[str, Any] | None = None
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every row of a read as a dict, and the last state a batch carried (what a load would commit). As after a
    load's commit, a broker that hands messages out until acknowledged (RabbitMQ, MQTT) is then told so."""
    rows: list[dict[str, Any]] = []
    committed = state
    for batch in source.read(stream, state=state):
        rows.extend(dict(zip(batch.columns, row, strict=True)) for row in batch.rows)
        if batch.state is not None:
            committed = batch.state
    if isinstance(source, Acknowledging):
        source.acknowledge(committed)
    return rows, committed


def as_kit_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({"id": int(r["id"]), "name": r["name"]} for r in rows), key=lambda r: r["id"])


@pytest.mark.parametrize("name", list(CONNECTOR_TYPES))
def test_every_registered_type_has_a_kit(name: str) -> None:
    """A connector type is done when its kit runs: kit/<type>.py provides `source(tmp_path, rows)`."""
    if name in WITHOUT_KIT_YET:
        assert not has_kit(name), f"{name!r} has a kit now: take it off WITHOUT_KIT_YET"
        return
    assert has_kit(name), (f"connector type {name!r} has no conformance kit: add aggregator_tests/connectors/kit/"
                           f"{name}.py with a `source(tmp_path, rows)` hook (docs/connectors/write-a-connector.md)")


def test_the_exceptions_are_registered_types() -> None:
    assert WITHOUT_KIT_YET <= set(CONNECTOR_TYPES)


def test_every_kit_runs_a_registered_type() -> None:
    """A kit (or variant) named for no registered type would be skipped silently: a typo must fail instead."""
    assert [k for k in kit_names() if connector_of(k) not in CONNECTOR_TYPES] == []
    assert {"files__sftp", "files__azure"} <= set(KITS)


def test_check(connector: str, kit: KitSource) -> None:
    message = source_for(connector, kit.config, kit.environ).check()
    assert isinstance(message, str) and message.strip()
    assert not [s for s in kit.secrets if s in message]


def test_discover(connector: str, kit: KitSource) -> None:
    source = source_for(connector, kit.config, kit.environ)
    if not kit.discovers:
        with pytest.raises(ConnectorConfigError, match="declare the source's `columns:`"):
            source.discover(stream_of(connector, kit.stream))
        rows, _ = read_rows(source, stream_of(connector, kit.stream))
        assert len(rows) == ROWS, "the refused discovery took messages"
        return
    infos = source.discover(stream_of(connector, kit.stream))
    assert infos, "discover(stream) found nothing"
    columns = infos[0].columns
    assert columns.get("id") == ColumnType.INTEGER and columns.get("name") == ColumnType.TEXT, columns


def test_read_every_row_exactly(connector: str, kit: KitSource) -> None:
    rows, _ = read_rows(source_for(connector, kit.config, kit.environ), stream_of(connector, kit.stream))
    assert as_kit_rows(rows) == [kit_row(i) for i in range(1, ROWS + 1)]


def test_incremental_reads_only_new_rows(connector: str, kit: KitSource) -> None:
    source = source_for(connector, kit.config, kit.environ)
    stream = stream_of(connector, kit.incremental_stream)
    assert CONNECTOR_TYPES[connector].incremental(stream, "append"), "the kit's incremental stream keeps no state"
    first, state = read_rows(source, stream)
    assert len(first) == ROWS and state is not None, "a full read ends with a state to commit"
    kit.add_rows(range(ROWS + 1, ROWS + 6))
    second, state = read_rows(source, stream, state)
    assert as_kit_rows(second) == [kit_row(i) for i in range(ROWS + 1, ROWS + 6)]
    third, _ = read_rows(source, stream, state)
    assert third == []


def _failure_text(source: Source[Any], stream: Any) -> str:
    """What a user sees of a failing connection: the check's answer or error, and the read's error, each with
    its whole exception chain."""
    seen: list[str] = []
    for attempt in (source.check, lambda: read_rows(source, stream)):
        try:
            seen.append(str(attempt()))
        except Exception as exc:  # noqa: BLE001 - the error is what is checked
            seen.append("".join(traceback.format_exception(exc)))
            seen.append(repr(exc))
    return "\n".join(seen)


def test_secrets_never_in_errors(connector: str, kit: KitSource) -> None:
    if not kit.secrets:
        # Nothing to leak only if the connector has no credential option at all.
        fields = CONNECTOR_TYPES[connector].config_model.model_fields
        assert not [f for f in fields if is_secret_key(f)], "the kit must exercise the connector's credentials"
    assert kit.failing, "the kit declares no failing configs"
    stream = stream_of(connector, kit.stream)
    for config in kit.failing:
        try:
            source = source_for(connector, config, kit.environ)
        except ValueError as exc:  # refused when built (egress rules): that message is what users see
            text = "".join(traceback.format_exception(exc))
        else:
            text = _failure_text(source, stream)
        assert "Traceback" in text or "failed" in text.lower() or "error" in text.lower(), text
        leaked = [s for s in kit.secrets if s in text]
        assert not leaked, f"{config}: a credential appears in:\n{text}"


# --- exactly once under a killed run worker ---------------------------------------------------------------

SPEC_NAME = "kit"


def _spec(connector: str, kit: KitSource) -> str:
    return yaml.safe_dump({
        "connections": {"src": {"type": connector, "config": kit.config}},
        "pipelines": [{"name": SPEC_NAME, "sources": [
            {"name": "rows", "connection": "src", "stream": kit.incremental_stream, "write_mode": "append"}]}],
    })


def _materialize(env: dict[str, str], kill_after_progress: int | None) -> tuple[int, str]:
    """`dagster asset materialize` (the run worker, steps in process); with `kill_after_progress`, SIGKILLed
    once it has logged that many progress lines (one per batch: rows read and handed to the load)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "aggregator.definitions", "--select", "*"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    lines: list[str] = []
    progressed = threading.Event()

    def follow() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if kill_after_progress is not None and sum("rows so far" in x for x in lines) >= kill_after_progress:
                progressed.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        if kill_after_progress is not None:
            while not progressed.wait(0.2):
                if proc.poll() is not None:
                    break
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        reader.join(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    return proc.returncode, "".join(lines)


def _loaded_ids(warehouse: Path) -> list[int]:
    if not warehouse.exists():
        return []
    with sqlite3.connect(warehouse) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (f"{SPEC_NAME}_rows",)).fetchone():
            return []
        return [int(r[0]) for r in conn.execute(f"SELECT id FROM {SPEC_NAME}_rows ORDER BY id")]


@pytest.mark.slow
def test_exactly_once_when_the_run_worker_is_killed(connector: str, kit_name: str, tmp_path: Path) -> None:
    rows = 20_000  # many small batches: the kill lands while the load still reads
    with kit_for(kit_name)(tmp_path, rows) as live:
        try:
            home, specs = tmp_path / "home", tmp_path / "specs"
            (home / "dagster").mkdir(parents=True)
            specs.mkdir()
            shutil.copyfile(REPO / "aggregator" / "dagster.yaml", home / "dagster" / "dagster.yaml")
            (specs / "kit.yaml").write_text(_spec(connector, live))
            env = platform_env(AGGREGATOR_HOME=str(home), AGGREGATOR_PIPELINES=str(specs),
                               DAGSTER_HOME=str(home / "dagster"), AGGREGATOR_PROGRESS_SECONDS="0", **live.environ)
            warehouse = home / "warehouse.db"

            code, log = _materialize(env, kill_after_progress=3)
            assert code == -signal.SIGKILL, f"the load ended before it could be killed (exit {code}):\n{log[-3000:]}"
            assert _loaded_ids(warehouse) == [], "rows were committed by a load that was killed"

            code, log = _materialize(env, kill_after_progress=None)
            assert code == 0, log[-3000:]
            assert _loaded_ids(warehouse) == list(range(1, rows + 1))

            live.add_rows(range(rows + 1, rows + 11))
            code, log = _materialize(env, kill_after_progress=None)
            assert code == 0, log[-3000:]
            assert _loaded_ids(warehouse) == list(range(1, rows + 11))
        finally:
            dispose_engines()


# --- bounded memory ---------------------------------------------------------------------------------------

MEASURE = """
import json, sys
from aggregator.pipelines.connections import Connection, build_source
from connectors.registry import CONNECTOR_TYPES
from connectors.secrets import Resolver
import os
from connectors.streams.base import Acknowledging
connector, config, stream = json.loads(sys.argv[1])
source = build_source(Connection.model_validate({"type": connector, "config": config}), "kit", Resolver(os.environ))
stream = CONNECTOR_TYPES[connector].stream_model.model_validate(stream)
# A broker acknowledged after each run: run after run until one finds nothing new, as the message sensor
# drives it (a RabbitMQ run holds at most 65,535 unacknowledged messages). Other sources: one read.
rows, state = 0, None
while True:
    read = 0
    for batch in source.read(stream, state=state):
        read += len(batch.rows)
        state = batch.state if batch.state is not None else state
    rows += read
    if read == 0 or not isinstance(source, Acknowledging):
        break
    source.acknowledge(state)
# VmHWM, not getrusage's ru_maxrss: that survives execve, so it would report the forking test process's size.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "peak_kib": peak}))
"""


def _peak_rss_kib(connector: str, live: KitSource) -> tuple[int, int]:
    # The system allocator, one arena: with Arrow's default (jemalloc) pool the peak RSS of the very same read
    # varied by up to 18 MiB (dirty pages kept for reuse), which hid the growth this measures; with these, the
    # same files read measured 183/189/190 MiB at 20k/200k/400k rows, 2 MiB apart at most between repeats.
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps([connector, live.config, live.stream])],
        env=platform_env(**live.environ, MALLOC_ARENA_MAX="1", ARROW_DEFAULT_MEMORY_POOL="system"), cwd=REPO, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return int(answer["rows"]), int(answer["peak_kib"])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_source(connector: str, kit_name: str, tmp_path: Path) -> None:
    """Reading 10x the rows costs no more than a little peak RSS: batches are bounded, nothing accumulates.
    Held whole, 200,000 kit rows take about 40 MiB in Python; the allowance is a quarter of that. Each size is
    read twice and the lower peak kept: a peak RSS only ever errs upwards (an arena or a buffer a thread held a
    moment longer), and one such read measured 10.4 MiB of growth on a loaded machine."""
    small, large = memory_rows(kit_name)
    peaks = {}
    for rows in (small, large):
        (tmp_path / str(rows)).mkdir()
        with kit_for(kit_name)(tmp_path / str(rows), rows) as live:
            try:
                reads = [_peak_rss_kib(connector, live)]
                if live.consumed_by_reads:
                    live.add_rows(range(1, rows + 1))
                reads.append(_peak_rss_kib(connector, live))
            finally:
                dispose_engines()
        assert [read for read, _ in reads] == [rows, rows]
        peaks[rows] = min(peak for _, peak in reads)
    growth_mib = (peaks[large] - peaks[small]) / 1024
    assert growth_mib < 10, f"peak RSS grew {growth_mib:.1f} MiB from {small:,} to {large:,} rows ({peaks})"
