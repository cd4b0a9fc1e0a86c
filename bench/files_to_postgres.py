"""Files -> PostgreSQL, side by side in one run on the same generated data and server:

(a) `psql \\copy` of the CSV into a pre-created table — the floor for getting a CSV file into PostgreSQL;
(b) this project: FilesResource + SqlDestination, the stream's DEFAULT configuration (only the path) and the
    spec's default write mode (replace), for the CSV, JSON Lines and Parquet renderings of the same rows;
(c) dlt's `filesystem` source with its `read_csv` reader into its `postgres` destination, with dlt's defaults.

Goals: (b) CSV, JSONL and Parquet at >= 0.5x the rows/s of (a); peak RSS of (b) at --records vs --small rows
<= 1.3x (memory flat in file size); (b) >= 3x (c).

    python bench/files_to_postgres.py [--records 2000000] [--small 200000] [--dlt-records 200000] [--skip-dlt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import psycopg

COLUMNS = ("id bigint, sku text, name text, price double precision, quantity bigint, active boolean, "
           "created_at timestamp")
FORMATS = ("csv", "jsonl", "parquet")


def generate(directory: Path, rows: int) -> dict[str, Path]:
    """The same `rows` records (7 columns, ~86 bytes a CSV line) as CSV, JSON Lines and Parquet, written in
    slices so generating 2,000,000 rows does not need them all in memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    paths = {fmt: directory / f"records.{fmt}" for fmt in FORMATS}
    step = 200_000
    writer = None
    with paths["csv"].open("wb") as csv_out, paths["jsonl"].open("w") as jsonl_out:
        for start in range(1, rows + 1, step):
            ids = np.arange(start, min(rows, start + step - 1) + 1)
            table = pa.table({
                "id": ids,
                "sku": [f"SKU-{i:08d}" for i in ids],
                "name": [f"product {i % 9973} variant {i % 7}" for i in ids],
                "price": np.round((ids % 10_000) * 0.37 + 0.99, 2),
                "quantity": ids % 250,
                "active": ids % 3 != 0,
                "created_at": (np.datetime64("2024-01-01T00:00:00") + ids * 17).astype("datetime64[us]"),
            })
            pacsv.write_csv(table, csv_out, pacsv.WriteOptions(include_header=start == 1, quoting_style="none"))
            for record in table.to_pylist():
                record["created_at"] = record["created_at"].isoformat()
                jsonl_out.write(json.dumps(record) + "\n")
            if writer is None:
                writer = pq.ParquetWriter(paths["parquet"], table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()
    return paths


def psql_copy(args: argparse.Namespace) -> int:
    """psql's \\copy into the table the driver created (the COPY baseline the goal is stated against)."""
    out = subprocess.run(
        ["psql", args.dsn, "-v", "ON_ERROR_STOP=1", "-c",
         f"\\copy {args.table} FROM '{args.file}' WITH (FORMAT csv, HEADER true)"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip().split()[-1])  # "COPY 2000000"


def ours(args: argparse.Namespace) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.files import FilesResource, FileStream

    path = Path(args.file)
    files = FilesResource(base_dir=str(path.parent))
    dest = SqlDestination(url=common.sqlalchemy_url(args.dsn))
    return dest.load(args.table, files.read(FileStream.model_validate({"path": path.name})), "replace").rows_read


def dlt_csv(args: argparse.Namespace) -> int:
    import dlt
    from dlt.sources.filesystem import filesystem, read_csv

    path = Path(args.file)
    source = (filesystem(bucket_url=path.parent.as_uri(), file_glob=path.name) | read_csv()).with_name(args.table)
    with tempfile.TemporaryDirectory(prefix="bench_dlt_") as work:
        pipeline = dlt.pipeline(pipeline_name=f"bench_{args.table}", pipelines_dir=work,
                                destination=dlt.destinations.postgres(credentials=common.dlt_credentials(args.dsn)),
                                dataset_name="dlt")
        pipeline.run(source).raise_on_failed_jobs()
    return common.dlt_rows(pipeline, args.table)


CASES = {"psql": psql_copy, "ours": ours, "dlt": dlt_csv}
PRELOAD = {
    "ours": ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.files"),
    "dlt": ("dlt", "dlt.sources.filesystem", "dlt.destinations"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2_000_000, help="rows for the side-by-side cases")
    parser.add_argument("--small", type=int, default=200_000, help="rows for the RSS comparison (0: skip)")
    parser.add_argument("--dlt-records", type=int, default=200_000,
                        help="rows for dlt (slower by an order of magnitude) and the same-size (a)/(b) cases")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--case")
    parser.add_argument("--dsn")
    parser.add_argument("--file")
    parser.add_argument("--table")
    parser.add_argument("--generate", help="write the data files into this directory and exit")
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate), args.records)
        return
    if args.case:
        common.case_main(CASES, PRELOAD, args)
        return

    print(f"start: {common.load_note()}")
    results: list[tuple[str, common.Measurement]] = []
    with tempfile.TemporaryDirectory(prefix="bench_files_") as work, common.database() as dsn:
        def run(case: str, file: Path, table: str) -> common.Measurement:
            if case == "psql":
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"CREATE TABLE {table} ({COLUMNS})")
            return common.run_case(__file__, case, "--dsn", dsn, "--file", str(file), "--table", table)

        sizes = sorted({args.records, args.small, args.dlt_records} - {0}, reverse=True)
        for rows in sizes:
            # In a child: Linux carries a process's peak RSS across fork and exec, so generating here would
            # inflate every case's measured peak.
            subprocess.run([sys.executable, __file__, "--generate", str(Path(work) / str(rows)), "--records", str(rows)],
                           check=True, env={**os.environ, "PYTHONPATH": str(common.ROOT)})
        paths = {rows: {fmt: Path(work) / str(rows) / f"records.{fmt}" for fmt in FORMATS} for rows in sizes}
        for rows in sizes:
            print(f"generated {rows:,} rows: {paths[rows]['csv'].stat().st_size / 1e6:.0f} MB of CSV")
        big = paths[args.records]
        base = run("psql", big["csv"], "psql_big")
        results.append((f"(a) psql \\copy CSV, {args.records:,} rows", base))
        mine = {}
        for fmt in FORMATS:
            mine[fmt] = run("ours", big[fmt], f"ours_{fmt}")
            results.append((f"(b) FilesResource + SqlDestination, {fmt}, {args.records:,} rows", mine[fmt]))
        small = {}
        if args.small:
            for fmt in FORMATS:
                small[fmt] = run("ours", paths[args.small][fmt], f"small_{fmt}")
                results.append((f"(b) {fmt}, {args.small:,} rows", small[fmt]))
        peer = peer_base = peer_mine = None
        if not args.skip_dlt and args.dlt_records:
            same = paths[args.dlt_records]
            peer_base = run("psql", same["csv"], "psql_peer") if args.dlt_records != args.records else base
            peer_mine = mine["csv"] if args.dlt_records == args.records else (
                small["csv"] if args.dlt_records == args.small else run("ours", same["csv"], "ours_peer"))
            peer = run("dlt", same["csv"], "dlt_csv")
            if args.dlt_records != args.records:
                results.append((f"(a) psql \\copy CSV, {args.dlt_records:,} rows", peer_base))
            results.append((f"(c) dlt filesystem + read_csv -> postgres, {args.dlt_records:,} rows", peer))
    print(f"end: {common.load_note()}")
    common.print_table("Files -> PostgreSQL", results, base, peer)
    print()
    for fmt in FORMATS:
        share = mine[fmt]["rows_per_s"] / base["rows_per_s"]
        common.goal(f"{fmt}: rows/s vs psql \\copy at {args.records:,} rows", share, ">= 0.50", share >= 0.5)
    if small:
        for fmt in FORMATS:
            growth = mine[fmt]["peak_rss_mb"] / small[fmt]["peak_rss_mb"]
            common.goal(f"{fmt}: peak RSS {args.records:,} / {args.small:,} rows", growth, "<= 1.30", growth <= 1.3)
    if peer and peer_mine:
        versus = peer_mine["rows_per_s"] / peer["rows_per_s"]
        common.goal(f"csv: rows/s vs dlt at {args.dlt_records:,} rows", versus, ">= 3.0", versus >= 3)


if __name__ == "__main__":
    main()
