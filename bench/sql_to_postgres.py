"""SQL -> PostgreSQL: this project's SqlResource + SqlDestination against a bare psycopg server-side cursor
+ COPY loop, reading a generated table of 8 mixed-type columns. Also peak RSS at 10x the rows, and the cost
of an incremental re-sync (cursor on id) with nothing new.

    python bench/sql_to_postgres.py [--records 200000] [--big 2000000]
"""

from __future__ import annotations

import argparse
import time

import common
import psycopg
from psycopg import sql

COLUMNS = ("id bigint, sku text, name text, price double precision, quantity bigint, active boolean, "
           "created_at timestamp, category text")
CHUNK = 10_000


def make_source(dsn: str, table: str, rows: int) -> None:
    with psycopg.connect(dsn) as conn:
        # The table name is quoted by psycopg (sql.Identifier), never pasted into the statement as text.
        conn.execute(sql.SQL("CREATE TABLE {} (" + COLUMNS + ", PRIMARY KEY (id))").format(sql.Identifier(table)))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, 'SKU-' || lpad(i::text, 8, '0'), 'product ' || (i %% 9973), "
                "round(((i %% 10000) * 0.37 + 0.99)::numeric, 2), i %% 250, i %% 3 <> 0, "
                "timestamp '2024-01-01' + i * interval '17 seconds', "
                "CASE WHEN i %% 11 = 0 THEN NULL ELSE (ARRAY['alpha','beta','gamma','delta','epsilon'])[i %% 5 + 1] END "
                "FROM generate_series(1, %s) AS i"
            ).format(sql.Identifier(table)),
            (rows,),
        )
        conn.commit()
        # A production table has planner statistics (autovacuum); without them the incremental query's
        # cursor plan guesses 20% of the table matches `id > :cursor` and scans it all.
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def bare(dsn: str, source: str, table: str) -> int:
    rows = 0
    with psycopg.connect(dsn) as src, psycopg.connect(dsn) as dst:
        dst.execute(sql.SQL("CREATE TABLE {} (" + COLUMNS + ")").format(sql.Identifier(table)))
        with src.cursor(name="bench") as cur, dst.cursor() as out, out.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(source)))
            while chunk := cur.fetchmany(CHUNK):
                for row in chunk:
                    copy.write_row(row)
                rows += len(chunk)
    return rows


def ours(dsn: str, source: str, table: str, incremental: bool = False) -> int:
    from aggregator.destinations.sql import SqlDestination
    from connectors.sql import SqlResource, SqlStream

    stream = SqlStream(table=source, chunk_size=CHUNK, cursor_column="id" if incremental else None)
    dest = SqlDestination(url=dsn)
    key = table if incremental else None
    state = dest.read_state(key) if key else None
    return dest.load(table, SqlResource(url=dsn).read(stream, state=state), "append", state_key=key).rows_read


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=2_000_000, help="rows for the RSS-scaling case (0: skip)")
    parser.add_argument("--case")
    parser.add_argument("--dsn")
    parser.add_argument("--source")
    parser.add_argument("--table")
    args = parser.parse_args()
    if args.case:
        if args.case != "bare":
            import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401  (loaded lazily by the first engine)

            import aggregator.destinations.sql  # noqa: F401  (import time is not load time)
            import connectors.sql  # noqa: F401
        started = time.perf_counter()
        if args.case == "bare":
            rows = bare(args.dsn, args.source, args.table)
        else:
            rows = ours(args.dsn, args.source, args.table, incremental=args.case == "incremental")
        common.report(rows, time.perf_counter() - started)
        return

    results = []
    with common.database() as dsn:
        make_source(dsn, "src_small", args.records)

        def run(case: str, source: str, table: str) -> dict[str, float]:
            return common.run_case(__file__, case, "--dsn", dsn, "--source", source, "--table", table)

        base = run("bare", "src_small", "bare_small")
        results.append((f"(a) bare: psycopg server-side cursor + COPY, {args.records:,} rows", base))
        results.append((f"(b) SqlResource + SqlDestination, {args.records:,} rows", run("ours", "src_small", "ours_small")))
        full = run("incremental", "src_small", "incr")
        resync = run("incremental", "src_small", "incr")
        results.append(("(b) incremental: full sync", full))
        results.append(("(b) incremental: re-sync, no new rows", resync))
        if args.big:
            make_source(dsn, "src_big", args.big)
            results.append((f"(a) bare, {args.big:,} rows", run("bare", "src_big", "bare_big")))
            results.append((f"(b) ours, {args.big:,} rows", run("ours", "src_big", "ours_big")))
            big_full = run("incremental", "src_big", "incr_big")
            big_resync = run("incremental", "src_big", "incr_big")
            results.append((f"(b) incremental: full sync, {args.big:,} rows", big_full))
            results.append((f"(b) incremental: re-sync, {args.big:,} rows, no new rows", big_resync))
    common.print_table("SQL (PostgreSQL) -> PostgreSQL", results, base)
    print(f"\nthroughput (b)/(a): {results[1][1]['rows_per_s'] / base['rows_per_s']:.2f}  (target >= 0.50)")
    if args.big:
        print(f"peak RSS {args.big:,} / {args.records:,} rows: "
              f"{results[-3][1]['peak_rss_mb'] / results[1][1]['peak_rss_mb']:.2f}  (target <= 1.30)")
    print(f"incremental re-sync / full sync time, {args.records:,} rows: {resync['seconds'] / full['seconds']:.3f}  (target < 0.05)")
    if args.big:
        print(f"incremental re-sync / full sync time, {args.big:,} rows: {big_resync['seconds'] / big_full['seconds']:.3f}  (target < 0.05)")


if __name__ == "__main__":
    main()
