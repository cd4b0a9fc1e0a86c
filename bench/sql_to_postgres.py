"""SQL -> PostgreSQL: this project's SqlResource + SqlDestination (DEFAULT configuration: only the table and,
for the incremental case, its cursor column are given) against a bare psycopg server-side cursor + COPY loop,
reading a generated table of 8 mixed-type columns. Then the incremental case (cursor on id; goal: a no-change
re-sync < 5 % of the full sync) and, with --big, peak RSS at more rows.

    python bench/sql_to_postgres.py [--records 200000] [--big 0]
"""

from __future__ import annotations

import argparse

import common
import psycopg

COLUMNS = ("id bigint, sku text, name text, price double precision, quantity bigint, active boolean, "
           "created_at timestamp, category text")
CHUNK = 10_000  # the bare loop's fetch size (the connector's default chunk_size is the same)


def make_source(dsn: str, table: str, rows: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TABLE {table} ({COLUMNS}, PRIMARY KEY (id))")
        conn.execute(
            f"INSERT INTO {table} SELECT i, 'SKU-' || lpad(i::text, 8, '0'), 'product ' || (i %% 9973), "
            "round(((i %% 10000) * 0.37 + 0.99)::numeric, 2), i %% 250, i %% 3 <> 0, "
            "timestamp '2024-01-01' + i * interval '17 seconds', "
            "CASE WHEN i %% 11 = 0 THEN NULL ELSE (ARRAY['alpha','beta','gamma','delta','epsilon'])[i %% 5 + 1] END "
            "FROM generate_series(1, %s) AS i",
            (rows,),
        )
        conn.commit()
        # A production table has planner statistics (autovacuum); without them the incremental query's
        # cursor plan guesses 20% of the table matches `id > :cursor` and scans it all.
        conn.execute(f"ANALYZE {table}")


def bare(args: argparse.Namespace) -> int:
    rows = 0
    with psycopg.connect(args.dsn) as src, psycopg.connect(args.dsn) as dst:
        dst.execute(f"CREATE TABLE {args.table} ({COLUMNS})")
        with src.cursor(name="bench") as cur, dst.cursor() as out, out.copy(f"COPY {args.table} FROM STDIN") as copy:
            cur.execute(f"SELECT * FROM {args.source}")
            while chunk := cur.fetchmany(CHUNK):
                for row in chunk:
                    copy.write_row(row)
                rows += len(chunk)
    return rows


def ours(args: argparse.Namespace) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.sql import SqlResource, SqlStream

    incremental = args.case == "incremental"
    url = common.sqlalchemy_url(args.dsn)
    stream = SqlStream.model_validate({"table": args.source, "cursor_column": "id" if incremental else None})
    dest = SqlDestination(url=url)
    key = args.table if incremental else None
    state = dest.read_state(key) if key else None
    return dest.load(args.table, SqlResource(url=url).read(stream, state=state), "append", state_key=key).rows_read


CASES = {"bare": bare, "ours": ours, "incremental": ours}
PRELOAD = dict.fromkeys(("ours", "incremental"),
                        ("sqlalchemy.dialects.postgresql.psycopg", "aggregator.destinations.sql", "connectors.sql"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=0, help="rows for the RSS-scaling case (0: skip)")
    parser.add_argument("--case")
    parser.add_argument("--dsn")
    parser.add_argument("--source")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.case:
        common.case_main(CASES, PRELOAD, args)
        return

    print(f"start: {common.load_note()}")
    results: list[tuple[str, common.Measurement]] = []
    with common.database() as dsn:
        make_source(dsn, "src_small", args.records)

        def run(case: str, source: str, table: str) -> common.Measurement:
            return common.run_case(__file__, case, "--dsn", dsn, "--source", source, "--table", table)

        base = run("bare", "src_small", "bare_small")
        results.append((f"(a) bare: psycopg server-side cursor + COPY, {args.records:,} rows", base))
        mine = run("ours", "src_small", "ours_small")
        results.append(("(b) SqlResource + SqlDestination, default config", mine))
        full = run("incremental", "src_small", "incr")
        # Nothing new since the previous run; a re-sync is ~0.1 s on a busy box, so the median of three.
        resync = common.median_case([run("incremental", "src_small", "incr") for _ in range(3)])
        results.append(("(b) incremental: full sync", full))
        results.append(("(b) incremental: re-sync, no new rows (median of 3)", resync))
        big = None
        if args.big:
            make_source(dsn, "src_big", args.big)
            results.append((f"(a) bare, {args.big:,} rows", run("bare", "src_big", "bare_big")))
            big = run("ours", "src_big", "ours_big")
            results.append((f"(b) ours, {args.big:,} rows", big))
    print(f"end: {common.load_note()}")
    common.print_table("SQL (PostgreSQL) -> PostgreSQL", results, base)
    print()
    throughput = mine["rows_per_s"] / base["rows_per_s"]
    common.goal("throughput (b)/(a)", throughput, ">= 0.50", throughput >= 0.5)
    share = resync["seconds"] / full["seconds"]
    common.goal(f"re-sync / full sync time at {args.records:,} rows", share, "< 0.05", share < 0.05)
    if big:
        growth = big["peak_rss_mb"] / mine["peak_rss_mb"]
        common.goal(f"peak RSS {args.big:,} / {args.records:,} rows", growth, "<= 1.30", growth <= 1.3)


if __name__ == "__main__":
    main()
