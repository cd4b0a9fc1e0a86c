"""Nested REST records -> PostgreSQL tables, this project beside dlt on the same local API and server.

Each record (bench/api_server.py `/nested`) has two nested objects and an array of 1-3 items, each item with
an array of tags: both loaders flatten the objects into `customer__address__city`-style columns and write the
arrays into child tables `<table>__items` and `<table>__items__tags` (dlt's default normalization; here the
stream's `nested: {}`).

(b) RestApiResource (`nested: {}`) + SqlDestination, defaults otherwise;
(c) dlt's `rest_api` source into `postgres`, defaults.

    python bench/nested_rest_to_postgres.py [--records 100000] [--skip-dlt]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import common

os.environ.setdefault("AGGREGATOR_ALLOWED_NETWORKS", "127.0.0.0/8")  # the benchmark API is on loopback

PAGE = 1000


def ours(args: argparse.Namespace) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.rest import RestApiResource, RestStream

    stream = RestStream.model_validate({
        "path": "/nested", "records_path": "data", "nested": {},
        "pagination": {"type": "offset", "limit": PAGE, "total_path": "total"},
    })
    dest = SqlDestination(url=common.sqlalchemy_url(args.dsn))
    return dest.load(args.table, RestApiResource(base_url=args.api).read(stream), "append").rows_read


def dlt_rest(args: argparse.Namespace) -> int:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": args.api,
            "paginator": {"type": "offset", "limit": PAGE, "offset_param": "offset", "limit_param": "limit",
                          "total_path": "total"},
        },
        "resources": [{"name": args.table, "endpoint": {"path": "nested", "data_selector": "data"}}],
    })
    with tempfile.TemporaryDirectory(prefix="bench_dlt_") as work:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{args.table}", pipelines_dir=work,
                                destination=dlt.destinations.postgres(credentials=common.dlt_credentials(args.dsn)),
                                dataset_name="dlt")
        pipeline.run(source).raise_on_failed_jobs()
    return common.dlt_rows(pipeline, args.table)


CASES = {"ours": ours, "dlt": dlt_rest}
PRELOAD = {
    "ours": ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.rest"),
    "dlt": ("dlt", "dlt.sources.rest_api", "dlt.destinations"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
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
    with common.database() as dsn, common.api_server(args.records) as api:
        def run(case: str, table: str) -> common.Measurement:
            return common.run_case(__file__, case, "--api", api, "--dsn", dsn, "--table", table)

        mine = run("ours", "ours_nested")
        results.append((f"(b) RestApiResource nested + SqlDestination, {args.records:,} records", mine))
        if not args.skip_dlt:
            dlt_result = run("dlt", "dlt_nested")
            results.append(("(c) dlt rest_api source -> postgres, defaults", dlt_result))
    print(f"end: {common.load_note()}")
    common.print_table("Nested REST -> PostgreSQL (parent + 2 child tables)", results, mine, dlt_result)
    if dlt_result:
        versus = mine["rows_per_s"] / dlt_result["rows_per_s"]
        common.goal("throughput (b)/(c) dlt", versus, ">= 1.0", versus >= 1)


if __name__ == "__main__":
    main()
