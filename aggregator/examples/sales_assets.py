"""The samples' Python asset: reads the `sales` sample pipeline's table, so it loads only with that pipeline."""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.

import dagster as dg
import pandas as pd

from aggregator.destinations.sql import SqlDestination


@dg.asset(
    key=["sales", "region_leaderboard"],
    group_name="sales",
    deps=[dg.AssetKey(["sales", "daily_sales"])],
    kinds={"python", "pandas"},
)
def region_leaderboard(context: dg.AssetExecutionContext, warehouse: SqlDestination) -> dg.MaterializeResult:
    """Regions ranked by total revenue, with their best day (table sales_region_leaderboard)."""
    with warehouse.engine.connect() as conn:
        daily = pd.read_sql_table("sales_daily_sales", conn)
    if daily.empty:
        return dg.MaterializeResult(metadata={"dagster/row_count": 0})
    totals = daily.groupby("region", as_index=False).agg(revenue=("revenue", "sum"), orders=("orders", "sum"))
    best = daily.loc[daily.groupby("region")["revenue"].idxmax(), ["region", "day"]].rename(columns={"day": "best_day"})
    board = totals.merge(best, on="region").sort_values("revenue", ascending=False).reset_index(drop=True)
    board["rank"] = board.index + 1
    # One transaction: on SQLite and PostgreSQL the drop-and-create of to_sql is atomic inside it.
    with warehouse.engine.begin() as conn:
        board.to_sql("sales_region_leaderboard", conn, if_exists="replace", index=False)
    context.log.info(f"top region: {board.iloc[0]['region']}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(board),
            "dagster/table_name": "sales_region_leaderboard",
            # tabulate (behind to_markdown) ships with Dagster
            "leaderboard": dg.MetadataValue.md(board.to_markdown(index=False)),
        }
    )

