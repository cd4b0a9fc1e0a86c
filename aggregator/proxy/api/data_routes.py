"""`/api/tables`, `POST /api/query` and `/api/assets/{pipeline}/{asset}/export`: data of the caller's pipelines."""

from __future__ import annotations

from starlette.responses import Response, StreamingResponse

from aggregator.proxy.api.access import require
from aggregator.proxy.api.catalog import WAREHOUSE
from aggregator.proxy.api.csv_safe import write_row
from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.export import ExportCaps, export_csv, export_parquet
from aggregator.proxy.api.models import ExportQuery, QueryRequest, QueryResult, TableInfo
from aggregator.proxy.api.query_guard import check_query
from aggregator.proxy.api.query_stream import (
    OpenQuery,
    encode_csv,
    encode_json,
    encode_parquet,
    json_value,
    open_query,
    stream,
)
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.policy.rbac import Role

# json_value is re-exported: the previews encode their rows the same way.
__all__ = ["json_value", "routes"]


def routes(api: ApiState) -> list[Route]:
    async def list_tables(req: ApiRequest) -> list[TableInfo]:
        """Warehouse tables the caller may query and export (those of the pipelines in the grant)."""
        return [TableInfo(pipeline=t.pipeline, asset=t.asset, table=t.table) for t in await api.tables_of(req.principal)]

    async def run_query(req: ApiRequest) -> Response:
        """One read-only SELECT over the caller's tables, under a deadline, a row limit and byte caps, streamed."""
        body = req.body_as(QueryRequest)
        allowed = {t.table for t in await api.tables_of(req.principal)}
        sql = check_query(body.sql, api.warehouse.dialect, allowed)
        limits = api.limits
        release = api.slots.take(req.principal.user)
        try:
            opened: OpenQuery = await api.slots.run(open_query, api.warehouse, sql, limits.query_timeout_s,
                                                    limits.max_row_bytes)
        except ApiError:
            release()
            raise
        except Exception as exc:  # noqa: BLE001 - a database error is the caller's SQL: 400 with the first line
            release()
            raise ApiError(400, f"the database refused the query: {str(exc).splitlines()[0][:300]}") from None

        def done() -> None:
            try:
                opened.close()
            finally:
                release()

        headers = {"cache-control": "no-store"}
        if body.format != "json":
            # Known from the first chunk when it holds more rows than the limit, or all of them; otherwise
            # the answer is already streaming when the limit is reached: a CSV ends with `# truncated: ...`,
            # a Parquet file says it in its footer's metadata (`aggregator.truncated`).
            if len(opened.first) > body.row_limit:
                headers["x-truncated"] = "true"
            elif len(opened.first) < opened.chunk_rows:
                headers["x-truncated"] = "false"
        if body.format == "parquet":
            headers["content-disposition"] = 'attachment; filename="query.parquet"'
            chunks = encode_parquet(opened, body.row_limit, limits.max_response_bytes)
            return StreamingResponse(stream(api.slots, chunks, done), media_type="application/vnd.apache.parquet",
                                     headers=headers)
        if body.format == "csv":
            chunks = encode_csv(opened, body.row_limit, limits.max_response_bytes, write_row,
                                say_truncated="x-truncated" not in headers)
            return StreamingResponse(stream(api.slots, chunks, done), media_type="text/csv; charset=utf-8",
                                     headers=headers)
        chunks = encode_json(opened, sql, body.row_limit, limits.max_response_bytes)
        return StreamingResponse(stream(api.slots, chunks, done), media_type="application/json", headers=headers)

    async def export_asset(req: ApiRequest) -> Response:
        """Download an asset's warehouse table as CSV or Parquet, streamed (optional row limit)."""
        pipeline, asset = req.params["pipeline"], req.params["asset"]
        query = req.query_as(ExportQuery)
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
                cur.execute(f"SELECT * FROM {api.warehouse.quote(found.table)} WHERE 1 = 0")  # noqa: S608 (identifiers quoted by the dialect)
                cur.fetchmany(1)

        release = api.slots.take(req.principal.user)
        try:
            await api.slots.run(probe)
        except ApiError:
            release()
            raise
        except Exception:  # noqa: BLE001 - the table is declared but not materialized yet
            release()
            raise ApiError(404, f"table {found.table} does not exist yet; materialize {pipeline}/{asset} first") from None
        caps = ExportCaps(api.limits.export_timeout_s, api.limits.max_row_bytes)
        if query.format == "parquet":
            body, media, suffix = export_parquet(api.warehouse, found.table, query.limit, caps), \
                "application/vnd.apache.parquet", "parquet"
        else:
            body, media, suffix = export_csv(api.warehouse, found.table, query.limit, caps), \
                "text/csv; charset=utf-8", "csv"
        return StreamingResponse(stream(api.slots, body, release), media_type=media, headers={
            "content-disposition": f'attachment; filename="{found.table}.{suffix}"', "cache-control": "no-store"})

    return [
        Route("GET", "/api/tables", list_tables, "Tables you may query", response=list[TableInfo]),
        Route("POST", "/api/query", run_query, "Run a read-only SQL query", body=QueryRequest,
              response=QueryResult, statuses=(408, 413, 415, 429, 503), reads=True),
        Route("GET", "/api/assets/{pipeline}/{asset}/export", export_asset, "Export an asset's table",
              query=ExportQuery, media=("text/csv", "application/vnd.apache.parquet"), statuses=(409, 429, 503)),
    ]
