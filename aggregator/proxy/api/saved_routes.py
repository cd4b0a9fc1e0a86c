"""`/api/saved-queries` and `/api/dashboards`: the caller's own saved queries and dashboards (Analytics page).

Any signed-in role may keep its own; nobody sees another user's (an id of someone else's is a 404, for admins
too: sharing is not a feature yet, so no role needs it). A query is saved only if the guard accepts it under the
caller's grant at that moment; it is checked again every time it runs (`POST /api/query` under the grant of
whoever runs it), so a grant narrowed later refuses it then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.api.models import Dashboard, DashboardIn, SavedQuery, SavedQueryIn
from aggregator.proxy.api.query_guard import check_query
from aggregator.proxy.api.router import ApiRequest, Route
from aggregator.proxy.api.state import ApiState
from aggregator.proxy.storage.saved import DashboardRow, SavedError, SavedQueryRow, SavedStore

T = TypeVar("T")


def _query(row: SavedQueryRow) -> SavedQuery:
    return SavedQuery.model_validate(vars(row))


def _dashboard(row: DashboardRow) -> Dashboard:
    return Dashboard.model_validate(vars(row))


def routes(api: ApiState) -> list[Route]:
    store = SavedStore(api.services.store.engine)

    async def call(fn: Callable[..., T], *args: Any) -> T:
        try:
            result: T = await api.services.run_io(fn, *args)
        except SavedError as exc:
            raise ApiError(exc.status, exc.message) from None
        return result

    async def guarded(req: ApiRequest, body: SavedQueryIn) -> None:
        allowed = {t.table for t in await api.tables_of(req.principal)}
        check_query(body.sql, api.warehouse.dialect, allowed)

    async def list_saved_queries(req: ApiRequest) -> list[SavedQuery]:
        """Your saved queries, by name."""
        return [_query(r) for r in await call(store.list_queries, req.principal.user)]

    async def create_saved_query(req: ApiRequest) -> SavedQuery:
        """Save a query (it must pass the query guard under your grant now)."""
        body = req.body_as(SavedQueryIn)
        await guarded(req, body)
        chart = body.chart.model_dump() if body.chart else None
        return _query(await call(store.create_query, req.principal.user, body.name, body.sql, body.row_limit, chart))

    async def get_saved_query(req: ApiRequest) -> SavedQuery:
        """One of your saved queries."""
        return _query(await call(store.get_query, req.principal.user, req.params["query_id"]))

    async def update_saved_query(req: ApiRequest) -> SavedQuery:
        """Replace one of your saved queries (checked by the query guard again)."""
        body = req.body_as(SavedQueryIn)
        await guarded(req, body)
        chart = body.chart.model_dump() if body.chart else None
        return _query(await call(store.update_query, req.principal.user, req.params["query_id"], body.name, body.sql,
                                 body.row_limit, chart))

    async def delete_saved_query(req: ApiRequest) -> list[SavedQuery]:
        """Delete one of your saved queries (409 while a dashboard of yours shows it); answers those left."""
        await call(store.delete_query, req.principal.user, req.params["query_id"])
        return await list_saved_queries(req)

    async def list_dashboards(req: ApiRequest) -> list[Dashboard]:
        """Your dashboards, by name."""
        return [_dashboard(r) for r in await call(store.list_dashboards, req.principal.user)]

    async def create_dashboard(req: ApiRequest) -> Dashboard:
        """Create a dashboard of your saved queries."""
        body = req.body_as(DashboardIn)
        items = [i.model_dump() for i in body.items]
        return _dashboard(await call(store.create_dashboard, req.principal.user, body.name, items))

    async def get_dashboard(req: ApiRequest) -> Dashboard:
        """One of your dashboards."""
        return _dashboard(await call(store.get_dashboard, req.principal.user, req.params["dashboard_id"]))

    async def update_dashboard(req: ApiRequest) -> Dashboard:
        """Replace one of your dashboards (its name and tiles)."""
        body = req.body_as(DashboardIn)
        items = [i.model_dump() for i in body.items]
        return _dashboard(await call(store.update_dashboard, req.principal.user, req.params["dashboard_id"],
                                     body.name, items))

    async def delete_dashboard(req: ApiRequest) -> list[Dashboard]:
        """Delete one of your dashboards (its saved queries stay); answers those left."""
        await call(store.delete_dashboard, req.principal.user, req.params["dashboard_id"])
        return await list_dashboards(req)

    one_query, one_dashboard = "/api/saved-queries/{query_id}", "/api/dashboards/{dashboard_id}"
    return [
        Route("GET", "/api/saved-queries", list_saved_queries, "Your saved queries", response=list[SavedQuery]),
        Route("POST", "/api/saved-queries", create_saved_query, "Save a query", body=SavedQueryIn,
              response=SavedQuery, statuses=(409, 422)),
        Route("GET", one_query, get_saved_query, "One of your saved queries", response=SavedQuery),
        Route("PUT", one_query, update_saved_query, "Change a saved query", body=SavedQueryIn, response=SavedQuery,
              statuses=(409,)),
        Route("DELETE", one_query, delete_saved_query, "Delete a saved query", response=list[SavedQuery],
              statuses=(409,)),
        Route("GET", "/api/dashboards", list_dashboards, "Your dashboards", response=list[Dashboard]),
        Route("POST", "/api/dashboards", create_dashboard, "Create a dashboard", body=DashboardIn,
              response=Dashboard, statuses=(409, 422)),
        Route("GET", one_dashboard, get_dashboard, "One of your dashboards", response=Dashboard),
        Route("PUT", one_dashboard, update_dashboard, "Change a dashboard", body=DashboardIn, response=Dashboard,
              statuses=(409,)),
        Route("DELETE", one_dashboard, delete_dashboard, "Delete a dashboard", response=list[Dashboard]),
    ]
