"""REST -> PostgreSQL, side by side in one run on the same local API and server:

(a) bare: requests + json + psycopg COPY, no framework — the floor;
(b) this project: RestApiResource + SqlDestination with the connection's DEFAULT configuration (only the API's
    description — path, records path, pagination — is given; no budget, batch or retry knob is touched);
(c) dlt's `rest_api` source into its `postgres` destination, with dlt's defaults.

Then the incremental case of (b) (goal: a no-change re-sync < 5 % of the full sync) at --resync-records.

    python bench/rest_to_postgres.py [--records 1000000] [--resync-records 200000] [--big 0] [--skip-dlt]
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import common

COLUMNS = ("id bigint, sku text, name text, price double precision, quantity bigint, active boolean, "
           "created_at text, category text")
PAGE = 1000  # the API's page size: part of describing the API, the same for every case


def bare(args: argparse.Namespace) -> int:
    """The floor: no framework, just what any loader must do."""
    import json

    import psycopg
    import requests

    rows = 0
    with psycopg.connect(args.dsn) as conn, requests.Session() as session:
        conn.execute(f"CREATE TABLE {args.table} ({COLUMNS})")
        with conn.cursor() as cur, cur.copy(f"COPY {args.table} FROM STDIN") as copy:
            offset = 0
            while True:
                body = json.loads(session.get(f"{args.api}/records", params={"offset": offset, "limit": PAGE}).content)
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


def _stream(incremental: bool) -> Any:
    from connectors.rest import RestStream

    return RestStream.model_validate({  # as a spec's `stream:` block gives it
        "path": "/records", "records_path": "data",
        "params": {"since": "{cursor}"} if incremental else {},
        "pagination": {"type": "offset", "limit": PAGE, "total_path": "total"},
        "incremental": {"cursor_path": "id"} if incremental else None,
    })


def ours(args: argparse.Namespace) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.rest import RestApiResource

    incremental = args.case == "incremental"
    source = RestApiResource(base_url=args.api)  # the defaults a user gets
    dest = SqlDestination(url=common.sqlalchemy_url(args.dsn))
    key = args.table if incremental else None
    state = dest.read_state(key) if key else None
    return dest.load(args.table, source.read(_stream(incremental), state=state), "append", state_key=key).rows_read


def dlt_rest(args: argparse.Namespace) -> int:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": args.api,
            "paginator": {"type": "offset", "limit": PAGE, "offset_param": "offset", "limit_param": "limit",
                          "total_path": "total"},
        },
        "resources": [{"name": args.table, "endpoint": {"path": "records", "data_selector": "data"}}],
    })
    with tempfile.TemporaryDirectory(prefix="bench_dlt_") as work:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{args.table}", pipelines_dir=work,
                                destination=dlt.destinations.postgres(credentials=common.dlt_credentials(args.dsn)), dataset_name="dlt")
        info = pipeline.run(source)
        info.raise_on_failed_jobs()
    return common.dlt_rows(pipeline, args.table)


CASES = {"bare": bare, "ours": ours, "incremental": ours, "dlt": dlt_rest}
PRELOAD = {
    "ours": ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.rest"),
    "incremental": ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.rest"),
    "dlt": ("dlt", "dlt.sources.rest_api", "dlt.destinations"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000, help="records for the side-by-side cases")
    parser.add_argument("--resync-records", type=int, default=200_000, help="records for the re-sync case")
    parser.add_argument("--big", type=int, default=0, help="also (a)/(b) at this many records, for RSS scaling")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--case")
    parser.add_argument("--api")
    parser.add_argument("--dsn")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.case:
        common.case_main(CASES, PRELOAD, args)
        return

    print(f"start: {common.load_note()}")
    results: list[tuple[str, common.Measurement]] = []
    dlt_result = None
    with common.database() as dsn:
        def run(api: str, case: str, table: str) -> common.Measurement:
            return common.run_case(__file__, case, "--api", api, "--dsn", dsn, "--table", table)

        with common.api_server(args.records) as api:
            base = run(api, "bare", "bare_rest")
            results.append((f"(a) bare: requests + json + COPY, {args.records:,} records", base))
            mine = run(api, "ours", "ours_rest")
            results.append(("(b) RestApiResource + SqlDestination, default config", mine))
            if not args.skip_dlt:
                dlt_result = run(api, "dlt", "dlt_rest")
                results.append(("(c) dlt rest_api source -> postgres, defaults", dlt_result))
        with common.api_server(args.resync_records) as api:
            full = run(api, "incremental", "incr_rest")
            # Nothing new since the previous run; a re-sync is ~0.1 s on a busy box, so the median of three.
            resync = common.median_case([run(api, "incremental", "incr_rest") for _ in range(3)])
            results.append((f"(b) incremental: full sync, {args.resync_records:,} records", full))
            results.append(("(b) incremental: re-sync, no new records (median of 3)", resync))
        big = None
        if args.big:
            with common.api_server(args.big) as api:
                results.append((f"(a) bare, {args.big:,} records", run(api, "bare", "bare_big")))
                big = run(api, "ours", "ours_big")
                results.append((f"(b) ours, {args.big:,} records", big))
    print(f"end: {common.load_note()}")
    common.print_table("REST -> PostgreSQL", results, base, dlt_result)
    print()
    throughput = mine["rows_per_s"] / base["rows_per_s"]
    common.goal("throughput (b)/(a)", throughput, ">= 0.50", throughput >= 0.5)
    if dlt_result:
        versus = mine["rows_per_s"] / dlt_result["rows_per_s"]
        common.goal("throughput (b)/(c) dlt", versus, ">= 3.0", versus >= 3)
    share = resync["seconds"] / full["seconds"]
    common.goal(f"re-sync / full sync time at {args.resync_records:,} records", share, "< 0.05", share < 0.05)
    if big:
        growth = big["peak_rss_mb"] / mine["peak_rss_mb"]
        common.goal(f"peak RSS {args.big:,} / {args.records:,} records", growth, "<= 1.30", growth <= 1.3)


if __name__ == "__main__":
    main()
