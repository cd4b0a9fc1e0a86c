"""S3 -> PostgreSQL, side by side in one run on the same generated CSV object and the same S3 server (moto's,
on loopback, as the tests start it):

(a) a bare client loop: boto3 `get_object`, the body streamed 1 MiB at a time into psycopg's
    `COPY ... FROM STDIN (FORMAT csv, HEADER true)` of a pre-created table — the floor for S3 CSV into PostgreSQL;
(b) this project: FilesResource on `s3://bucket/prefix` (Arrow's S3 client behind fsspec, the object copied to
    a temporary file and read by the CSV reader) + SqlDestination, defaults (only the path), write mode replace.

Goal: (b) >= 0.5x the rows/s of (a).

    python bench/files_s3_to_postgres.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import psycopg

from files_to_postgres import COLUMNS  # isort: skip  (a sibling script: the same table and data)

ENV = ("BENCH_S3_ENDPOINT", "BENCH_S3_KEY", "BENCH_S3_SECRET", "BENCH_S3_BUCKET")


def bare(args: argparse.Namespace) -> int:
    """boto3 streaming GET into COPY FROM STDIN."""
    import boto3

    endpoint, key, secret, bucket = (os.environ[name] for name in ENV)
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                      region_name="us-east-1")
    body = s3.get_object(Bucket=bucket, Key="exports/records.csv")["Body"]
    with psycopg.connect(args.dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {args.table} FROM STDIN (FORMAT csv, HEADER true)") as copy:
            for chunk in body.iter_chunks(1 << 20):
                copy.write(chunk)
        rows = cur.rowcount
    return int(rows)


def ours(args: argparse.Namespace) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.files import FilesResource, FileStream

    endpoint, key, secret, bucket = (os.environ[name] for name in ENV)
    files = FilesResource(base_dir=f"s3://{bucket}/exports",
                          storage_options={"endpoint_url": endpoint, "key": key, "secret": secret})
    dest = SqlDestination(url=common.sqlalchemy_url(args.dsn))
    return dest.load(args.table, files.read(FileStream.model_validate({"path": "records.csv"})), "replace").rows_read


CASES = {"bare": bare, "ours": ours}
PRELOAD = {
    "bare": ("boto3",),
    "ours": ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.files.resource",
             "pyarrow.fs"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--case")
    parser.add_argument("--dsn")
    parser.add_argument("--file")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.case:
        common.case_main(CASES, PRELOAD, args)
        return

    from aggregator_tests.s3_server import running_s3_server

    print(f"start: {common.load_note()}")
    results: list[tuple[str, common.Measurement]] = []
    with tempfile.TemporaryDirectory(prefix="bench_s3_") as work, common.database() as dsn, \
            running_s3_server(Path(work) / "s3") as s3:
        subprocess.run([sys.executable, str(Path(__file__).with_name("files_to_postgres.py")), "--generate",
                        work, "--records", str(args.records)], check=True, env={**os.environ, "PYTHONPATH": str(common.ROOT)})
        csv = Path(work) / "records.csv"
        bucket = s3.new_bucket("bench")
        s3.client().upload_file(str(csv), bucket, "exports/records.csv")
        print(f"uploaded {args.records:,} rows: {csv.stat().st_size / 1e6:.0f} MB of CSV to {s3.endpoint}")
        os.environ.update(BENCH_S3_ENDPOINT=s3.endpoint, BENCH_S3_KEY=s3.access_key, BENCH_S3_SECRET=s3.secret_key,
                          BENCH_S3_BUCKET=bucket, AGGREGATOR_ALLOWED_NETWORKS="127.0.0.0/8")

        def run(case: str, table: str) -> common.Measurement:
            if case == "bare":
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"CREATE TABLE {table} ({COLUMNS})")
            return common.run_case(__file__, case, "--dsn", dsn, "--table", table)

        base = common.median_case([run("bare", f"bare_{i}") for i in range(3)])
        mine = common.median_case([run("ours", f"ours_{i}") for i in range(3)])
        results += [(f"(a) boto3 get_object -> COPY FROM STDIN, {args.records:,} rows", base),
                    (f"(b) FilesResource s3:// + SqlDestination, {args.records:,} rows", mine)]
    print(f"end: {common.load_note()}")
    common.print_table("S3 CSV -> PostgreSQL", results, base, None)
    print()
    share = mine["rows_per_s"] / base["rows_per_s"]
    common.goal(f"csv from S3: rows/s vs bare boto3 + COPY at {args.records:,} rows", share, ">= 0.50", share >= 0.5)


if __name__ == "__main__":
    main()
