"""Regression: two overlapping runs of one incremental pipeline loaded 20 rows for 10 ids.

Each run read the cursor before its load transaction began, and the lock was taken only inside it, so both
started from the same cursor and appended the same records. The cursor is now read inside the load, after the
stream's lock (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE, MySQL GET_LOCK). These tests run two real runs
against a real HTTP source whose every request blocks until the test releases it, over generated interleavings: where the
second run starts, which records appear at the source between requests, and with what delay each request is
answered. Concurrency between runs is allowed here (they are in-process runs, outside any run queue): the load
alone must keep the table exact."""

from __future__ import annotations

import json
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from aggregator_tests.mariadb import lock_waiters as mysql_lock_waiters
from aggregator_tests.pipelines.conftest import query

PAGE = 3
SPEC = """
connections:
  gated_api:
    type: rest
    config: {{base_url: "{base_url}"}}
pipelines:
  - name: feed
    sources:
      - name: events
        connection: gated_api
        stream:
          type: rest
          path: events
          params: {{since: "{{cursor}}"}}
          records_path: "$.data"
          pagination: {{type: page_number, page_size_param: null}}
          incremental: {{cursor_path: updated_at}}
        write_mode: append
"""


def stamp(i: int) -> str:
    return f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}"


@dataclass
class GatedApi:
    """Records with increasing `updated_at`; each request waits for `release` before it is answered, from the
    records as they are when released."""

    url: str = ""
    records: list[dict[str, object]] = field(default_factory=list)
    arrivals: queue.Queue[threading.Event] = field(default_factory=queue.Queue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    most_in_flight: int = 0

    def add(self, count: int) -> None:
        with self.lock:
            start = len(self.records) + 1
            self.records.extend({"id": i, "updated_at": stamp(i)} for i in range(start, start + count))

    def page(self, since: str, page: int) -> list[dict[str, object]]:
        with self.lock:
            matching = [r for r in self.records if str(r["updated_at"]) > since]
        return matching[(page - 1) * PAGE: page * PAGE]


@contextmanager
def gated_api() -> Iterator[GatedApi]:
    api = GatedApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            params = parse_qs(urlparse(self.path).query)
            gate = threading.Event()
            with api.lock:
                api.in_flight += 1
                api.most_in_flight = max(api.most_in_flight, api.in_flight)
            api.arrivals.put(gate)
            try:
                if not gate.wait(timeout=120):
                    self.send_error(504, "never released")
                    return
                rows = api.page(params.get("since", [""])[0], int(params.get("page", ["1"])[0]))
            finally:
                with api.lock:
                    api.in_flight -= 1
            body = json.dumps({"data": rows}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class Run(threading.Thread):
    """One run of the pipeline on its own Dagster instance, in a thread."""

    def __init__(self, defs: dg.Definitions) -> None:
        super().__init__(daemon=True)
        self.defs = defs
        self._stack = ExitStack()  # the instance owns a temporary directory, removed by close()
        self.instance = self._stack.enter_context(dg.DagsterInstance.ephemeral())
        self.error: BaseException | None = None

    def close(self) -> None:
        self._stack.close()

    def run(self) -> None:
        try:
            job = self.defs.resolve_implicit_global_asset_job_def()
            job.execute_in_process(instance=self.instance, raise_on_error=True)
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            self.error = exc


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def lock_waiters(url: str) -> int:
    """Sessions of this PostgreSQL waiting for a lock (the stream's advisory lock, a row or a table)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalar_one())
    finally:
        engine.dispose()


def waits_in_sqlite_begin(thread: threading.Thread) -> bool:
    """Whether `thread` is inside the destination's BEGIN IMMEDIATE: queued on SQLite's write lock."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_begin" and frame.f_code.co_filename.endswith("engines.py"):
            return True
        frame = frame.f_back
    return False


def second_run_overlaps(run: Run, api: GatedApi, url: str) -> Callable[[], bool]:
    """The second run has reached the point where it competes with the first: it reads the source while the
    first holds a request open, or it waits on a database lock."""
    def check() -> bool:
        if api.in_flight >= 2:
            return True
        if url.startswith("mysql"):
            return mysql_lock_waiters(url) > 0
        return lock_waiters(url) > 0 if url.startswith("postgresql") else waits_in_sqlite_begin(run)
    return check


@pytest.mark.parametrize("seed", range(5))
def test_overlapping_incremental_runs_load_every_record_once(
    seed: int, spec_dir: Path, load_warehouse_url: str, compile_specs: Callable[[str], dg.Definitions],
) -> None:
    warehouse_url = load_warehouse_url
    rng = random.Random(seed)
    with gated_api() as api:
        api.add(rng.randint(4, 11))
        (spec_dir / "feed.yaml").write_text(SPEC.format(base_url=api.url))
        defs = compile_specs(warehouse_url)
        first, second = Run(defs), Run(defs)
        # The second run starts with the first (k = 0), or while the first holds its k-th request open.
        start_second_at = rng.randint(0, 3)
        runs = [first]
        released = 0
        first.start()
        if start_second_at == 0:
            runs.append(second)
            second.start()
        try:
            while any(r.is_alive() for r in runs) or (second not in runs):
                try:
                    gate = api.arrivals.get(timeout=0.05)
                except queue.Empty:
                    if second not in runs and not first.is_alive():
                        runs.append(second)  # the first run needed fewer requests: start the second now
                        second.start()
                    continue
                released += 1
                if released == start_second_at and second not in runs:
                    runs.append(second)
                    second.start()
                    wait_for(second_run_overlaps(second, api, warehouse_url),
                             "the second run to read the source or queue on a lock")
                if rng.random() < 0.5:
                    api.add(rng.randint(1, 4))  # records that arrive at the source while a run reads
                if rng.random() < 0.3:
                    time.sleep(rng.uniform(0, 0.05))  # jitter in how late the answer comes
                gate.set()
        finally:
            while any(r.is_alive() for r in runs):  # never leave a run blocked on a gate
                try:
                    api.arrivals.get(timeout=0.05).set()
                except queue.Empty:
                    pass
            for r in runs:
                r.join(timeout=60)
                r.close()
        assert first.error is None and second.error is None, (first.error, second.error)
        # The runs queued on the lock: never two requests of the stream open at once.
        assert api.most_in_flight == 1

        # A last run picks up what arrived after the second one read: every record exactly once, none skipped.
        final = Run(defs)
        final.start()
        while final.is_alive():
            try:
                api.arrivals.get(timeout=0.05).set()
            except queue.Empty:
                pass
        final.join()
        final.close()
        assert final.error is None, final.error
        ids = [row[0] for row in query(warehouse_url, "SELECT id FROM feed_events ORDER BY id")]
        assert ids == list(range(1, len(api.records) + 1))
        assert SqlDestination(url=warehouse_url).read_state("feed.events") == {"cursor": stamp(len(api.records))}
