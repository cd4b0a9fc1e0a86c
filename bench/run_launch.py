"""How fast does the daemon launch queued runs? QueuedRunCoordinator + PostgreSQL storage, measured.

    python bench/run_launch.py --runs 40 --max-concurrent 4 [--dequeue-interval 5]
        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

The topology is the production one from deploy/docker-compose.yml, on one machine: a throwaway PostgreSQL
database holds runs and event logs, a `dagster code-server` serves the code location over gRPC, and
`dagster-daemon run` dequeues runs and launches each through the DefaultRunLauncher (one OS process per run,
the same per-run cost a Kubernetes pod pays in process start-up and imports, minus the pod scheduling).

1. Enqueue N runs of a no-op job (the `dagster job launch` path: create the run, `instance.submit_run`).
2. Start the daemon; wait until every run is terminal; stop it.
3. Read the run lifecycle events back from PostgreSQL with plain SQL and report launch and completion rates.
4. Baseline alongside: the same N runs executed in process (`execute_in_process`) on the same storage, which
   costs the event-log writes but no queue, launch or process start — the floor the daemon path is divided by.

Everything runs against loopback; the database is dropped at the end (unless --keep).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

LOCATION = "bench"
JOB = "noop_job"
PIPELINE_TAG = "aggregator/pipeline"  # the production tag limit keys on it (deploy/dagster.yaml)


@dg.op
def noop() -> None:
    """Does nothing: the run's cost is the platform's, not the op's."""


@dg.job(name=JOB)
def noop_job() -> None:
    noop()


defs = dg.Definitions(jobs=[noop_job])


# --- benchmark driver (only when run as a script; the code server imports this file for `defs`) -------------


@dataclass(frozen=True)
class Result:
    label: str
    runs: int
    succeeded: int
    wall_s: float
    launched_per_min: float
    completed_per_min: float
    start_latency_p50_s: float
    start_latency_p95_s: float
    run_duration_p50_s: float
    events_per_run: float
    db_bytes_per_run: float
    sessions_per_run: float


def _common() -> types.ModuleType:
    """bench/common.py, imported by the driver only: the code server loads this file from another directory."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    return common


def instance_yaml(max_concurrent: int, dequeue_interval: int) -> str:
    # Same shape as deploy/dagster.yaml; only the knobs under test vary.
    return f"""
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: {dequeue_interval}
    dequeue_use_threads: true
    dequeue_num_workers: 4
concurrency:
  runs:
    max_concurrent_runs: {max_concurrent}
    tag_concurrency_limits:
      - key: {PIPELINE_TAG}
        value:
          applyLimitPerUniqueValue: true
        limit: 2
run_monitoring:
  enabled: true
telemetry:
  enabled: false
"""


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def db_size(conn) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def sessions(conn) -> int:
    """Connections ever opened to this database (PostgreSQL 14+). dagster-postgres uses SQLAlchemy's NullPool,
    so this counts how many connection set-ups the platform's storage writes cost."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def lifecycle(conn, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """run_id -> {event type: epoch seconds} for the run lifecycle events, straight from event_logs."""
    rows = conn.execute(
        "SELECT run_id, dagster_event_type, EXTRACT(EPOCH FROM timestamp) FROM event_logs "
        "WHERE run_id = ANY(%s) AND dagster_event_type IN "
        "('PIPELINE_ENQUEUED', 'PIPELINE_STARTING', 'PIPELINE_START', 'PIPELINE_SUCCESS', 'PIPELINE_FAILURE')",
        (run_ids,),
    ).fetchall()
    out: dict[str, dict[str, float]] = {}
    for run_id, kind, ts in rows:
        out.setdefault(run_id, {})[kind] = float(ts)
    return out


def count_events(conn, run_ids: list[str]) -> int:
    return conn.execute("SELECT COUNT(*) FROM event_logs WHERE run_id = ANY(%s)", (run_ids,)).fetchone()[0]


def wait_for_grpc(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"code server exited with {proc.returncode} before answering on port {port}")
        try:
            client.ping("")
            return
        except DagsterUserCodeUnreachableError:
            time.sleep(0.5)
    raise RuntimeError(f"code server did not answer on port {port} within {timeout_s}s")


def stop(proc: subprocess.Popen, grace_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def enqueue(instance: dg.DagsterInstance, workspace_file: Path, n: int, pipelines: int) -> list[str]:
    # The `dagster job launch` path (dagster._cli.job): private helpers, pinned with dagster==1.13.27.
    from dagster._cli.job import _create_run
    from dagster._cli.workspace.cli_target import WorkspaceOpts, get_workspace_from_cli_opts
    from dagster.version import __version__

    run_ids = []
    opts = WorkspaceOpts(workspace=(str(workspace_file),))
    with get_workspace_from_cli_opts(instance, version=__version__, workspace_opts=opts) as workspace:
        location = workspace.get_code_location(LOCATION)
        repo = next(iter(location.get_repositories().values()))
        remote_job = repo.get_full_job(JOB)
        for i in range(n):
            run = _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repo,
                remote_job=remote_job,
                run_config={},
                tags={PIPELINE_TAG: f"p{i % pipelines}"},
                op_selection=None,
                run_id=None,
            )
            instance.submit_run(run.run_id, workspace)
            run_ids.append(run.run_id)
    return run_ids


def bench_daemon(
    admin_url: str, n: int, max_concurrent: int, dequeue_interval: int, pipelines: int, timeout_s: float, keep: bool
) -> Result:
    import psycopg

    common = _common()
    scaffold = contextlib.ExitStack()
    dsn = scaffold.enter_context(common.database(admin_url, prefix="bench_run_launch"))
    work = Path(tempfile.mkdtemp(prefix="bench_run_launch_"))
    procs: list[subprocess.Popen] = []
    log_files = contextlib.ExitStack()
    try:
        home = work / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(instance_yaml(max_concurrent, dequeue_interval))
        port = common.free_port()
        workspace_file = work / "workspace.yaml"
        workspace_file.write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n"
            f"      location_name: {LOCATION}\n"
        )
        env = dict(os.environ, DAGSTER_HOME=str(home), DAGSTER_PG_URL=dsn)
        os.environ.update(DAGSTER_HOME=str(home), DAGSTER_PG_URL=dsn)
        logs = work / "logs"
        logs.mkdir()

        code_server = subprocess.Popen(
            [sys.executable, "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(port),
             "-f", str(Path(__file__).resolve()), "-a", "defs", "--location-name", LOCATION],
            env=env, cwd=work, stdout=log_files.enter_context(open(logs / "code_server.log", "wb")),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        procs.append(code_server)
        wait_for_grpc(port, code_server)

        with dg.DagsterInstance.get() as instance, psycopg.connect(dsn, autocommit=True) as conn:
            size_before, sessions_before = db_size(conn), sessions(conn)
            t_submit = time.monotonic()
            run_ids = enqueue(instance, workspace_file, n, pipelines)
            submit_s = time.monotonic() - t_submit
            print(f"  enqueued {n} runs in {submit_s:.1f}s ({n / submit_s * 60:.0f}/min)", flush=True)

            t0 = time.time()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace_file)],
                env=env, cwd=work, stdout=log_files.enter_context(open(logs / "daemon.log", "wb")),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            procs.append(daemon)
            terminal = {"SUCCESS", "FAILURE", "CANCELED"}
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                done = conn.execute(
                    "SELECT COUNT(*) FROM runs WHERE run_id = ANY(%s) AND status = ANY(%s)",
                    (run_ids, list(terminal)),
                ).fetchall()[0][0]  # COUNT(*): always exactly one row
                if done == n:
                    break
                if daemon.poll() is not None:
                    raise RuntimeError(f"daemon exited with {daemon.returncode}; see {logs / 'daemon.log'}")
                time.sleep(0.5)
            wall = time.time() - t0
            stop(daemon)

            events = lifecycle(conn, run_ids)
            starting = sorted(e["PIPELINE_STARTING"] for e in events.values() if "PIPELINE_STARTING" in e)
            finished = sorted(e["PIPELINE_SUCCESS"] for e in events.values() if "PIPELINE_SUCCESS" in e)
            start_latency = [e["PIPELINE_START"] - e["PIPELINE_STARTING"] for e in events.values()
                             if "PIPELINE_START" in e and "PIPELINE_STARTING" in e]
            durations = [e["PIPELINE_SUCCESS"] - e["PIPELINE_START"] for e in events.values()
                         if "PIPELINE_SUCCESS" in e and "PIPELINE_START" in e]
            n_events = count_events(conn, run_ids)
            size_after = db_size(conn)
            time.sleep(1)  # session statistics are flushed to the shared counters about once a second
            sessions_after = sessions(conn)
        if len(finished) < n:
            print(f"  WARNING: only {len(finished)}/{n} runs succeeded within {timeout_s:.0f}s; logs in {logs}")
            keep = True
        # Rates over the span the queue was draining: first launch to last launch / last success.
        launch_span = (starting[-1] - starting[0]) if len(starting) > 1 else float("nan")
        drain_span = (finished[-1] - starting[0]) if finished and starting else float("nan")
        return Result(
            label=f"daemon, max_concurrent_runs={max_concurrent}, dequeue_interval={dequeue_interval}s",
            runs=n,
            succeeded=len(finished),
            wall_s=wall,
            launched_per_min=(len(starting) - 1) / launch_span * 60 if launch_span else float("nan"),
            completed_per_min=len(finished) / drain_span * 60 if drain_span else float("nan"),
            start_latency_p50_s=statistics.median(start_latency) if start_latency else float("nan"),
            start_latency_p95_s=percentile(start_latency, 0.95),
            run_duration_p50_s=statistics.median(durations) if durations else float("nan"),
            events_per_run=n_events / n,
            db_bytes_per_run=(size_after - size_before) / n,
            sessions_per_run=(sessions_after - sessions_before) / n,
        )
    finally:
        for proc in reversed(procs):
            stop(proc)
        log_files.close()
        if keep:
            scaffold.pop_all()  # the database outlives the benchmark
            print(f"  kept database {dsn} and {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            scaffold.close()


def bench_in_process(admin_url: str, n: int) -> Result:
    """The floor: the same runs' event-log writes to the same storage, with no queue, launch or process start."""
    import psycopg

    with _common().database(admin_url, prefix="bench_run_launch") as dsn, \
            tempfile.TemporaryDirectory(prefix="bench_in_process_") as tmp:
        home = Path(tmp)
        (home / "dagster.yaml").write_text(instance_yaml(1, 5))
        os.environ["DAGSTER_PG_URL"] = dsn
        with dg.DagsterInstance.from_config(str(home)) as instance, psycopg.connect(dsn, autocommit=True) as conn:
            # Console logging off: it would print every event; the event log still records all of them.
            quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
            noop_job.execute_in_process(instance=instance, run_config=quiet)  # migrations, imports: untimed
            size_before, sessions_before = db_size(conn), sessions(conn)
            t0 = time.time()
            run_ids = [noop_job.execute_in_process(instance=instance, run_config=quiet).run_id for _ in range(n)]
            wall = time.time() - t0
            n_events = count_events(conn, run_ids)
            size_after = db_size(conn)
            time.sleep(1)
            sessions_after = sessions(conn)
        return Result(
            label="baseline: execute_in_process, same storage",
            runs=n, succeeded=n, wall_s=wall,
            launched_per_min=float("nan"),
            completed_per_min=n / wall * 60,
            start_latency_p50_s=float("nan"), start_latency_p95_s=float("nan"),
            run_duration_p50_s=wall / n,
            events_per_run=n_events / n,
            db_bytes_per_run=(size_after - size_before) / n,
            sessions_per_run=(sessions_after - sessions_before) / n,
        )


def bench_sample_pipeline(admin_url: str, runs: int) -> None:
    """Event-log volume of a real pipeline: the bundled `sales` sample materialized in process on PostgreSQL."""
    import psycopg

    with _common().database(admin_url, prefix="bench_run_launch") as dsn, \
            tempfile.TemporaryDirectory(prefix="bench_sample_") as tmp:
        home = Path(tmp)
        # The sample's SQLite warehouse goes under a throwaway AGGREGATOR_HOME, not the working directory.
        os.environ["AGGREGATOR_HOME"] = str(home / "aggregator")
        os.environ.pop("AGGREGATOR_WAREHOUSE_URL", None)
        from aggregator.definitions import defs as aggregator_defs

        (home / "dagster.yaml").write_text(instance_yaml(1, 5))
        os.environ["DAGSTER_PG_URL"] = dsn
        job = aggregator_defs().resolve_implicit_global_asset_job_def()
        quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
        with dg.DagsterInstance.from_config(str(home)) as instance, psycopg.connect(dsn, autocommit=True) as conn:
            job.execute_in_process(instance=instance, run_config=quiet)  # migrations, imports: untimed
            size_before, sessions_before = db_size(conn), sessions(conn)
            t0 = time.time()
            results = [job.execute_in_process(instance=instance, run_config=quiet) for _ in range(runs)]
            wall = time.time() - t0
            run_ids = [r.run_id for r in results]
            n_events = count_events(conn, run_ids)
            size_after = db_size(conn)
            time.sleep(1)
            sessions_after = sessions(conn)
        assets = len(results[0].get_asset_materialization_events())
        print(f"\nsample pipeline (in process, {runs} runs, {assets} assets/run): {wall / runs:.2f} s/run, "
              f"{n_events / runs:.0f} events/run ({n_events / runs / assets:.1f} per asset), "
              f"{(size_after - size_before) / runs / 1024:.0f} KiB/run, "
              f"{(sessions_after - sessions_before) / runs:.0f} PG connections/run")


def print_table(results: list[Result], baseline: Result) -> None:
    print()
    print("| configuration | runs ok | wall s | launched/min | completed/min | vs baseline "
          "| launch→start p50 / p95 s | run p50 s | events/run | DB KiB/run | PG connections/run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in [*results, baseline]:
        ratio = r.completed_per_min / baseline.completed_per_min
        print(
            f"| {r.label} | {r.succeeded}/{r.runs} | {r.wall_s:.0f} | {r.launched_per_min:.1f} "
            f"| {r.completed_per_min:.1f} | {ratio:.2f}x | {r.start_latency_p50_s:.1f} / {r.start_latency_p95_s:.1f} "
            f"| {r.run_duration_p50_s:.2f} | {r.events_per_run:.0f} | {r.db_bytes_per_run / 1024:.0f} "
            f"| {r.sessions_per_run:.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs to enqueue per configuration")
    parser.add_argument("--max-concurrent", type=int, nargs="*", default=[4],
                        help="max_concurrent_runs values to measure (one daemon pass each; none: skip)")
    parser.add_argument("--dequeue-interval", type=int, default=5,
                        help="QueuedRunCoordinator dequeue_interval_seconds (Dagster's default is 5)")
    parser.add_argument("--pipelines", type=int, default=8, help="distinct aggregator/pipeline tag values")
    parser.add_argument("--admin-url", default=os.environ.get("AGGREGATOR_BENCH_PG_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for one pass to drain")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs for inspection")
    parser.add_argument("--sample-pipeline", type=int, default=0, metavar="N",
                        help="also materialize the bundled sample pipeline N times and report its event volume")
    args = parser.parse_args()

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # so `finally` stops the daemon and code server and drops the database

    signal.signal(signal.SIGTERM, _interrupt)

    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for mc in args.max_concurrent:
        print(f"daemon pass: {args.runs} runs, max_concurrent_runs={mc}, "
              f"dequeue_interval={args.dequeue_interval}s", flush=True)
        results.append(bench_daemon(args.admin_url, args.runs, mc, args.dequeue_interval, args.pipelines,
                                    args.timeout, args.keep))
    if results:
        print(f"baseline pass: {args.runs} runs in process", flush=True)
        print_table(results, bench_in_process(args.admin_url, args.runs))
    if args.sample_pipeline:
        bench_sample_pipeline(args.admin_url, args.sample_pipeline)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0 if all(r.succeeded == r.runs for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
