"""REST -> PostgreSQL: this project's RestApiResource + SqlDestination against a bare requests + json +
psycopg COPY loop, on the same local API and server. Also peak RSS at 10x the records, and the cost of an
incremental re-sync with nothing new.

    python bench/rest_to_postgres.py [--records 200000] [--big 2000000]
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import common

if TYPE_CHECKING:
    from connectors.rest import RestStream

COLUMNS = "id bigint, sku text, name text, price double precision, quantity bigint, active boolean, created_at text, category text"
PAGE = 1000


def bare(api: str, dsn: str, table: str) -> int:
    """The floor: no framework, just what any loader must do."""
    import json

    import psycopg
    import requests

    rows = 0
    with psycopg.connect(dsn) as conn, requests.Session() as session:
        conn.execute(f"CREATE TABLE {table} ({COLUMNS})")
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
            offset = 0
            while True:
                body = json.loads(session.get(f"{api}/records", params={"offset": offset, "limit": PAGE}).content)
                data = body["data"]
                if not data:
                    break
                for record in data:
                    copy.write_row(tuple(record.values()))
                rows += len(data)
                offset += PAGE
                if offset >= body["total"]:
                    break
    return rows


def stream(incremental: bool) -> RestStream:
    from connectors.rest import RestStream

    return RestStream(
        path="/records", records_path="data", batch_size=10_000,
        params={"since": "{cursor}"} if incremental else {},
        pagination={"type": "offset", "limit": PAGE, "total_path": "total"},
        incremental={"cursor_path": "id"} if incremental else None,
    )


def ours(api: str, dsn: str, table: str, incremental: bool = False) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.rest import RestApiResource

    source = RestApiResource(base_url=api, requests_per_second=None)
    dest = SqlDestination(url=dsn)
    key = table if incremental else None
    state = dest.read_state(key) if key else None
    result = dest.load(table, source.read(stream(incremental), state=state), "append", state_key=key)
    return result.rows_read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=2_000_000, help="records for the RSS-scaling case (0: skip)")
    parser.add_argument("--case")
    parser.add_argument("--api")
    parser.add_argument("--dsn")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.case:  # inside a fresh subprocess
        if args.case != "bare":
            # Import time (Dagster is large) is start-up, not load throughput: keep it out of the timing.
            import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401  (loaded lazily by the first engine)

            import aggregator.destinations.sql  # noqa: F401
            import connectors.rest  # noqa: F401
        started = time.perf_counter()
        if args.case == "bare":
            rows = bare(args.api, args.dsn, args.table)
        else:
            rows = ours(args.api, args.dsn, args.table, incremental=args.case == "incremental")
        common.report(rows, time.perf_counter() - started)
        return

    results = []
    with common.database() as dsn:
        with common.api_server(args.records) as api:
            run = lambda case, table: common.run_case(__file__, case, "--api", api, "--dsn", dsn, "--table", table)
            base = run("bare", "bare_rest")
            results.append((f"(a) bare: requests + json + COPY, {args.records:,} records", base))
            results.append((f"(b) RestApiResource + SqlDestination, {args.records:,} records", run("ours", "ours_rest")))
            full = run("incremental", "incr_rest")
            resync = run("incremental", "incr_rest")  # nothing new since the previous run
            results.append(("(b) incremental: full sync", full))
            results.append(("(b) incremental: re-sync, no new records", resync))
        if args.big:
            with common.api_server(args.big) as api:
                run = lambda case, table: common.run_case(__file__, case, "--api", api, "--dsn", dsn, "--table", table)
                results.append((f"(a) bare, {args.big:,} records", run("bare", "bare_big")))
                results.append((f"(b) ours, {args.big:,} records", run("ours", "ours_big")))
                big_full = run("incremental", "incr_big")
                big_resync = run("incremental", "incr_big")
                results.append((f"(b) incremental: full sync, {args.big:,} records", big_full))
                results.append((f"(b) incremental: re-sync, {args.big:,} records, no new records", big_resync))
    common.print_table("REST -> PostgreSQL", results, base)
    ours_small, ours_big = results[1][1], (results[-3][1] if args.big else None)
    print(f"\nthroughput (b)/(a): {results[1][1]['rows_per_s'] / base['rows_per_s']:.2f}  (target >= 0.50)")
    if ours_big:
        print(f"peak RSS {args.big:,} / {args.records:,} records: {ours_big['peak_rss_mb'] / ours_small['peak_rss_mb']:.2f}  (target <= 1.30)")
    print(f"incremental re-sync / full sync time, {args.records:,} records: {resync['seconds'] / full['seconds']:.3f}  (target < 0.05)")
    if args.big:
        print(f"incremental re-sync / full sync time, {args.big:,} records: {big_resync['seconds'] / big_full['seconds']:.3f}  (target < 0.05)")


if __name__ == "__main__":
    main()
