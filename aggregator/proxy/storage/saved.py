"""Saved queries and dashboards, per user, in the proxy's database (every replica sees the same ones).

Every read and write names the user: a row of another user is not found, whatever the caller's role, so
nobody (admins included) reads or changes another user's queries. Only the text is stored; a saved query
runs like any other, under the grant of whoever runs it then (api/saved_routes.py).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.proxy.storage.db import dashboards, saved_queries

# Per-user budgets: a user cannot grow the platform database without bound (SQL is at most 100,000 characters).
MAX_SAVED_QUERIES = 200
MAX_DASHBOARDS = 50


class SavedError(ValueError):
    """A refused write: `status` 404 (no such row of this user), 409 (name taken, still used) or 422 (budget)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class SavedQueryRow:
    id: str
    name: str
    sql: str
    row_limit: int
    chart: dict[str, Any] | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class DashboardRow:
    id: str
    name: str
    items: list[dict[str, Any]]
    created_at: float
    updated_at: float


def _query_row(row: Any) -> SavedQueryRow:
    return SavedQueryRow(row.id, row.name, row.sql, row.row_limit, json.loads(row.chart) if row.chart else None,
                         row.created_at, row.updated_at)


def _dashboard_row(row: Any) -> DashboardRow:
    return DashboardRow(row.id, row.name, json.loads(row.items), row.created_at, row.updated_at)


class SavedStore:
    def __init__(self, engine: Engine, max_queries: int = MAX_SAVED_QUERIES,
                 max_dashboards: int = MAX_DASHBOARDS) -> None:
        self.engine, self.max_queries, self.max_dashboards = engine, max_queries, max_dashboards

    # ------------------------------------------------------------------------------------------ queries

    def list_queries(self, user: str) -> list[SavedQueryRow]:
        t = saved_queries.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(saved_queries).where(t.username == user).order_by(t.name)).all()
        return [_query_row(r) for r in rows]

    def get_query(self, user: str, query_id: str) -> SavedQueryRow:
        with self.engine.connect() as conn:
            return _query_row(self._owned(conn, saved_queries, user, query_id, "saved query"))

    def create_query(self, user: str, name: str, sql: str, row_limit: int,
                     chart: dict[str, Any] | None) -> SavedQueryRow:
        now, new_id = time.time(), secrets.token_hex(8)
        with self.engine.begin() as conn:
            self._lock_user(conn, saved_queries, user, self.max_queries, "saved queries")
            self._insert(conn, saved_queries, name, {
                "id": new_id, "username": user, "name": name, "sql": sql, "row_limit": row_limit,
                "chart": json.dumps(chart) if chart is not None else None, "created_at": now, "updated_at": now})
        return self.get_query(user, new_id)

    def update_query(self, user: str, query_id: str, name: str, sql: str, row_limit: int,
                     chart: dict[str, Any] | None) -> SavedQueryRow:
        with self.engine.begin() as conn:
            self._owned(conn, saved_queries, user, query_id, "saved query")
            self._update(conn, saved_queries, query_id, name, {
                "name": name, "sql": sql, "row_limit": row_limit,
                "chart": json.dumps(chart) if chart is not None else None, "updated_at": time.time()})
        return self.get_query(user, query_id)

    def delete_query(self, user: str, query_id: str) -> None:
        """Refused (409) while a dashboard of the user shows it: deleting it would silently empty a tile."""
        with self.engine.begin() as conn:
            self._owned(conn, saved_queries, user, query_id, "saved query")
            used = [d.name for d in self._dashboards(conn, user)
                    if any(item.get("query_id") == query_id for item in d.items)]
            if used:
                raise SavedError(409, f"saved query {query_id} is on dashboard(s) {', '.join(used)}; remove it "
                                 "from them first")
            conn.execute(sa.delete(saved_queries).where(saved_queries.c.id == query_id))

    # --------------------------------------------------------------------------------------- dashboards

    def list_dashboards(self, user: str) -> list[DashboardRow]:
        with self.engine.connect() as conn:
            return self._dashboards(conn, user)

    def get_dashboard(self, user: str, dashboard_id: str) -> DashboardRow:
        with self.engine.connect() as conn:
            return _dashboard_row(self._owned(conn, dashboards, user, dashboard_id, "dashboard"))

    def create_dashboard(self, user: str, name: str, items: list[dict[str, Any]]) -> DashboardRow:
        now, new_id = time.time(), secrets.token_hex(8)
        with self.engine.begin() as conn:
            self._lock_user(conn, dashboards, user, self.max_dashboards, "dashboards")
            self._check_items(conn, user, items)
            self._insert(conn, dashboards, name, {"id": new_id, "username": user, "name": name,
                                                  "items": json.dumps(items), "created_at": now, "updated_at": now})
        return self.get_dashboard(user, new_id)

    def update_dashboard(self, user: str, dashboard_id: str, name: str, items: list[dict[str, Any]]) -> DashboardRow:
        with self.engine.begin() as conn:
            self._owned(conn, dashboards, user, dashboard_id, "dashboard")
            self._check_items(conn, user, items)
            self._update(conn, dashboards, dashboard_id, name, {"name": name, "items": json.dumps(items),
                                                                   "updated_at": time.time()})
        return self.get_dashboard(user, dashboard_id)

    def delete_dashboard(self, user: str, dashboard_id: str) -> None:
        with self.engine.begin() as conn:
            self._owned(conn, dashboards, user, dashboard_id, "dashboard")
            conn.execute(sa.delete(dashboards).where(dashboards.c.id == dashboard_id))

    # ------------------------------------------------------------------------------------------ helpers

    @staticmethod
    def _owned(conn: Connection, table: sa.Table, user: str, row_id: str, what: str) -> Any:
        row = conn.execute(sa.select(table).where(table.c.id == row_id, table.c.username == user)).first()
        if row is None:
            raise SavedError(404, f"you have no {what} {row_id}")
        return row

    @staticmethod
    def _dashboards(conn: Connection, user: str) -> list[DashboardRow]:
        t = dashboards.c
        return [_dashboard_row(r) for r in conn.execute(
            sa.select(dashboards).where(t.username == user).order_by(t.name)).all()]

    @staticmethod
    def _lock_user(conn: Connection, table: sa.Table, user: str, limit: int, what: str) -> None:
        """The count checked against the budget; on PostgreSQL the user's rows are locked first, so two
        replicas adding at once cannot both pass at `limit - 1` (SQLite serializes writers anyway)."""
        rows = sa.select(table.c.id).where(table.c.username == user)
        if conn.dialect.name == "postgresql":
            rows = rows.with_for_update()
        count = len(conn.execute(rows).all())
        if count >= limit:
            raise SavedError(422, f"you have {count} {what}, the most one user may keep; delete some first")

    @staticmethod
    def _check_items(conn: Connection, user: str, items: list[dict[str, Any]]) -> None:
        ids = {item["query_id"] for item in items}
        t = saved_queries.c
        found = {r.id for r in conn.execute(sa.select(t.id).where(t.username == user, t.id.in_(ids))).all()} \
            if ids else set()
        missing = sorted(ids - found)
        if missing:
            raise SavedError(404, f"items name saved queries you do not have: {', '.join(missing)}")

    @staticmethod
    def _insert(conn: Connection, table: sa.Table, name: str, values: dict[str, Any]) -> None:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
        except sa.exc.IntegrityError:
            raise SavedError(409, f"you already have one named {name!r}; pick another name") from None

    @staticmethod
    def _update(conn: Connection, table: sa.Table, row_id: str, name: str, values: dict[str, Any]) -> None:
        try:
            with conn.begin_nested():
                conn.execute(sa.update(table).where(table.c.id == row_id).values(**values))
        except sa.exc.IntegrityError:
            raise SavedError(409, f"you already have one named {name!r}; pick another name") from None
