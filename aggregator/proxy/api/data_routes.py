"""`/api/tables`, `POST /api/query` and `/api/assets/{pipeline}/{asset}/export`: data of the caller's pipelines."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from starlette.responses import Response, StreamingResponse

from aggregator.proxy.api.access import in_scope, require
from aggregator.proxy.api.catalog import WAREHOUSE, AssetTable
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.export import export_csv, export_parquet
from aggregator.proxy.api.models import ExportQuery, QueryRequest, QueryResult, TableInfo
from aggregator.proxy.api.query_guard import check_query
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Principal, Role


def json_value(value: Any) -> Any:
    """JSON has no NaN, dates or bytes: those become strings (NaN/inf as their names)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def routes(api: ApiState) -> list[Route]:
    async def _tables(principal: Principal) -> list[AssetTable]:
        catalog = await api.catalog()
        return [t for t in catalog.tables if t.destination == WAREHOUSE and in_scope(principal, t.pipeline)]

    async def list_tables(req: ApiRequest) -> list[TableInfo]:
        """Warehouse tables the caller may query and export (those of the pipelines in the grant)."""
        return [TableInfo(pipeline=t.pipeline, asset=t.asset, table=t.table) for t in await _tables(req.principal)]

    async def run_query(req: ApiRequest) -> Response | QueryResult:
        """One read-only SELECT over the caller's tables, with a statement timeout and a row limit."""
        body = req.body
        assert isinstance(body, QueryRequest)
        allowed = {t.table for t in await _tables(req.principal)}
        sql = check_query(body.sql, api.warehouse.dialect, allowed)

        def run() -> tuple[list[str], list[Any]]:
            with api.warehouse.readonly(api.limits.query_timeout_s) as cur:
                cur.execute(sql)
                columns = [d[0] for d in cur.description] if cur.description else []
                return columns, cur.fetchmany(body.row_limit + 1)

        try:
            columns, rows = await api.services.run_io(run)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001 - a database error is the caller's SQL: 400 with the first line
            raise ApiError(400, f"the database refused the query: {str(exc).splitlines()[0][:300]}") from None
        truncated = len(rows) > body.row_limit
        rows = rows[: body.row_limit]
        headers = {"cache-control": "no-store", "x-truncated": str(truncated).lower()}
        if body.format == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
        return QueryResult(columns=columns, rows=[[json_value(v) for v in r] for r in rows], truncated=truncated,
                           sql=sql)

    async def export_asset(req: ApiRequest) -> Response:
        """Download an asset's warehouse table as CSV or Parquet, streamed (optional row limit)."""
        pipeline, asset = req.params["pipeline"], req.params["asset"]
        query = req.query
        assert isinstance(query, ExportQuery)
        require(req.principal, Role.viewer, "export", [pipeline])
        catalog = await api.catalog()
        found = next((t for t in catalog.tables if t.pipeline == pipeline and t.asset == asset), None)
        if found is None:
            raise ApiError(404, f"no asset {pipeline}/{asset} in the specs")
        if found.destination != WAREHOUSE:
            raise ApiError(409, f"{pipeline}/{asset} lands in connection {found.destination!r}, not the warehouse; "
                           "only warehouse tables can be exported")
        # Probe before streaming: a missing table is a clean 404, not a response cut off after its headers.
        def probe() -> None:
            with api.warehouse.readonly(api.limits.query_timeout_s) as cur:
                cur.execute(f"SELECT * FROM {api.warehouse.quote(found.table)} WHERE 1 = 0")
                cur.fetchmany(1)

        try:
            await api.services.run_io(probe)
        except ApiError:
            raise
        except Exception:  # noqa: BLE001 - the table is declared but not materialized yet
            raise ApiError(404, f"table {found.table} does not exist yet; materialize {pipeline}/{asset} first") from None
        if query.format == "parquet":
            body, media, suffix = export_parquet(api.warehouse, found.table, query.limit), \
                "application/vnd.apache.parquet", "parquet"
        else:
            body, media, suffix = export_csv(api.warehouse, found.table, query.limit), "text/csv; charset=utf-8", "csv"
        return StreamingResponse(body, media_type=media, headers={
            "content-disposition": f'attachment; filename="{found.table}.{suffix}"', "cache-control": "no-store"})

    return [
        Route("GET", "/api/tables", list_tables, "Tables you may query", response=list[TableInfo]),
        Route("POST", "/api/query", run_query, "Run a read-only SQL query", body=QueryRequest,
              response=QueryResult, statuses=(408, 415), reads=True),
        Route("GET", "/api/assets/{pipeline}/{asset}/export", export_asset, "Export an asset's table",
              query=ExportQuery, media=("text/csv", "application/vnd.apache.parquet"), statuses=(409,)),
    ]
