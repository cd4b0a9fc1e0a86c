"""The sqlglot check of the tables a transform reads, differential against real SQLite and PostgreSQL.

Generated statements combine refs, CTEs (some named like the forbidden table, quoted or not, in other case),
CTE bodies reading the name they define, subqueries in FROM and WHERE, joins, UNION, schema-qualified names and
quoted identifiers. Each runs in a database holding only the refs' tables: a read of anything else fails there
("no such table" / "does not exist"). The check must never accept a statement the database says reads a table
no ref names; for statements without quoted identifiers (where case folding is the same on both databases),
it must refuse exactly those.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.pipelines.refs import render
from aggregator.pipelines.sql_tables import refused_reads
from aggregator_tests.postgres import PgDatabase, temporary_database

REF_TABLES = {"a": "t_a", "b": "t_b"}
# Names that may be a CTE, a table nobody may read, or both; quoted forms keep their case.
NAMES = ["secret", "SECRET", '"secret"', '"Secret"', "x", "X", '"x"']


@dataclass
class Gen:
    """Builds one statement; `depth` bounds nesting so examples stay small."""

    draw: st.DrawFn
    aliases: int = 0

    def source(self, depth: int) -> str:
        """A FROM item with an alias of its own (a repeated alias is an error on PostgreSQL)."""
        self.aliases += 1
        return f"{self._source(depth)} AS s{self.aliases}"

    def _source(self, depth: int) -> str:
        kinds = ["ref", "name", "qualified"] + (["subquery"] if depth < 2 else [])
        kind = self.draw(st.sampled_from(kinds))
        if kind == "ref":
            return f"{{{{ ref('{self.draw(st.sampled_from(sorted(REF_TABLES)))}') }}}}"
        if kind == "name":
            return self.draw(st.sampled_from(NAMES))
        if kind == "qualified":
            return f"{self.draw(st.sampled_from(['main', 'public']))}.{self.draw(st.sampled_from(['t_a', 'secret']))}"
        return f"({self.query(depth + 1)})"

    def select(self, depth: int) -> str:
        sql = f"SELECT 1 AS c FROM {self.source(depth)}"
        if self.draw(st.booleans()):
            sql += f" CROSS JOIN {self.source(depth)}"
        if depth < 2 and self.draw(st.booleans()):
            sql += f" WHERE 1 IN (SELECT 1 FROM {self.source(depth + 1)})"
        if depth < 2 and self.draw(st.booleans()):
            sql += f" UNION ALL SELECT 1 AS c FROM {self.source(depth + 1)}"
        return sql

    def query(self, depth: int = 0) -> str:
        if depth >= 2 or not self.draw(st.booleans()):
            return self.select(depth)
        # Distinct names per WITH (case-folded): a repeated name is an error on both databases anyway.
        names = self.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2,
                                   unique_by=lambda n: n.strip('"').lower()))
        ctes = ", ".join(f"{name} AS ({self.select(depth + 1)})" for name in names)
        return f"WITH {ctes} {self.select(depth)}"


@st.composite
def statements(draw: st.DrawFn) -> str:
    return Gen(draw).query()


@dataclass
class Databases:
    sqlite: sqlite3.Connection
    pg: psycopg.Connection


@pytest.fixture(scope="module")
def databases(pg_admin_url: str) -> Iterator[Databases]:
    lite = sqlite3.connect(":memory:")
    db: PgDatabase
    with temporary_database(pg_admin_url) as db, psycopg.connect(db.dsn, autocommit=True) as pg:
        for table in REF_TABLES.values():
            lite.execute(f"CREATE TABLE {table} (c INTEGER)")
            pg.execute(f"CREATE TABLE {table} (c INTEGER)")
        try:
            yield Databases(lite, pg)
        finally:
            lite.close()


def _runs_sqlite(conn: sqlite3.Connection, sql: str) -> bool:
    try:
        conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        # SQLite treats a CTE reading its own name as recursive ("circular reference"): not a run either.
        assert "no such table" in str(exc) or "circular reference" in str(exc), (sql, exc)
        return False
    return True


def _runs_pg(conn: psycopg.Connection, sql: str) -> bool:
    try:
        conn.execute(sql).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sql=statements())
def test_accepted_sql_reads_only_refs(databases: Databases, sql: str) -> None:
    rendered = render(sql, lambda ref: REF_TABLES[ref])
    for dialect, runs in (("sqlite", _runs_sqlite(databases.sqlite, rendered)),
                          ("postgres", _runs_pg(databases.pg, rendered))):
        refused = refused_reads(sql, dialect)
        if not refused:
            assert runs, f"{dialect} accepted a statement that reads a table no ref names: {sql}"
        elif dialect == "postgres" and '"' not in sql and "." not in sql:
            # Unquoted names fold alike: a refusal means PostgreSQL reads a real table. (SQLite is not held to
            # this: it lets a CTE see later siblings and itself, which the check conservatively refuses.)
            assert not runs, f"{dialect} refused a statement that reads only refs and CTEs: {sql} ({refused})"


@pytest.mark.parametrize(("sql", "refused"), [
    ("SELECT * FROM {{ ref('a') }}", []),
    ("WITH x AS (SELECT * FROM {{ ref('a') }}) SELECT * FROM x", []),
    ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n", []),
    ("SELECT * FROM shop_orders", ["table 'shop_orders'"]),
    ("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret", ["table 'secret'"]),
    ('WITH "Secret" AS (SELECT 1) SELECT * FROM secret', ["table 'secret'"]),
    ("SELECT * FROM {{ ref('a') }} JOIN main.sqlite_master ON 1 = 1", ["table 'main.sqlite_master'"]),
    ("SELECT * FROM pragma_table_info('shop_orders')", ["pragma_table_info() in FROM"]),
    ("SELECT query_to_xml('select * from shop_orders', true, true, '')", ["function query_to_xml()"]),
    ("SELECT * FROM {{ ref('a') }} WHERE c IN (SELECT c FROM (SELECT c FROM other) AS s)", ["table 'other'"]),
    ("SELECT * FROM json_each('[1, 2]')", []),
])
def test_examples(sql: str, refused: list[str]) -> None:
    assert [r.what for r in refused_reads(sql, "postgres")] == refused
