"""SqlResource against real SQLite and PostgreSQL: chunked streaming, pushed-down cursors, windows, discover."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from connectors.batches import ColumnType as T
from connectors.errors import ConnectorConfigError, SourceReadError
from connectors.sql import SqlResource, SqlStream

START = dt.datetime(2024, 3, 1)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = {"sqlite": lambda: f"sqlite:///{tmp_path / 'source.db'}",
           "postgresql": lambda: request.getfixturevalue("pg_db").sqlalchemy_url,
           "mysql": lambda: request.getfixturevalue("mysql_url")}[request.param]()
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    orders = sa.Table(
        "orders", meta,
        sa.Column("id", sa.Integer, primary_key=True), sa.Column("customer", sa.String(40)),
        sa.Column("amount", sa.Numeric(10, 2)), sa.Column("paid", sa.Boolean),
        sa.Column("updated_at", sa.DateTime), sa.Column("day", sa.Date),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(orders.insert(), [
            {"id": i, "customer": f"c{i % 7}", "amount": i * 1.25, "paid": i % 3 == 0,
             "updated_at": START + dt.timedelta(hours=i), "day": (START + dt.timedelta(hours=i)).date()}
            for i in range(1, 101)
        ])
    engine.dispose()
    return url


def _bool(url: str) -> T:
    """MySQL has no boolean: BOOLEAN is TINYINT(1), which may hold 0..127, so it loads as the integer it is
    (declare `columns: {paid: boolean}` to load it as one). Discovery says the same as the load."""
    return T.INTEGER if url.startswith("mysql") else T.BOOLEAN


def ids(batches: list[Any]) -> list[int]:
    return [row[0] for b in batches for row in b.rows]


def test_table_streams_in_chunks_with_declared_types(source_url: str) -> None:
    batches = list(SqlResource(url=source_url).read(SqlStream(table="orders", chunk_size=30)))
    assert [len(b) for b in batches] == [30, 30, 30, 10]
    assert sorted(ids(batches)) == list(range(1, 101))
    assert batches[0].types == {"id": T.INTEGER, "customer": T.TEXT, "amount": T.FLOAT, "paid": _bool(source_url),
                                "updated_at": T.TIMESTAMP, "day": T.DATE}
    assert isinstance(batches[0].rows[0][2], float)  # NUMERIC arrives as float, loadable anywhere


@pytest.mark.parametrize("cursor_column", ["id", "updated_at"])
def test_incremental_cursor_is_a_bound_parameter(source_url: str, cursor_column: str) -> None:
    res = SqlResource(url=source_url)
    stream = SqlStream(table="orders", cursor_column=cursor_column, chunk_size=40)
    first = list(res.read(stream))
    state = first[-1].state
    assert all(b.state is None for b in first[:-1]) and state is not None

    with res.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO orders (id, customer, amount, paid, updated_at, day) "
                             "VALUES (101, 'new', 1.0, true, :at, :day)"),
                     {"at": START + dt.timedelta(days=30), "day": dt.date(2024, 3, 31)})
    assert ids(list(res.read(stream, state=state))) == [101]

    # The predicate is in the SQL the database receives, with the cursor as a bound parameter, not a literal.
    with res.engine.connect() as conn:
        statement, _ = res._statement(conn, stream, 100 if cursor_column == "id" else START, None)
        compiled = statement.compile(dialect=conn.dialect)
    sql = str(compiled)
    assert f"WHERE orders.{cursor_column} >" in sql and "100" not in sql and "2024" not in sql
    assert list(compiled.params.values()) == [100 if cursor_column == "id" else START]


def test_query_stream_with_cursor_and_window(source_url: str) -> None:
    res = SqlResource(url=source_url)
    stream = SqlStream(query="SELECT id, updated_at FROM orders WHERE paid = true;", cursor_column="updated_at",
                       window_column="updated_at")
    window = (START + dt.timedelta(hours=10), START + dt.timedelta(hours=20))
    assert sorted(ids(list(res.read(stream, window=window)))) == [12, 15, 18]
    state = {"cursor": {"timestamp": (START + dt.timedelta(hours=90)).isoformat()}}
    batches = list(res.read(stream, state=state))
    assert sorted(ids(batches)) == [93, 96, 99]
    assert batches[-1].state is not None
    assert list(res.read(stream, state=batches[-1].state)) == []  # the saved cursor round-trips


def test_window_needs_a_window_column(source_url: str) -> None:
    with pytest.raises(ConnectorConfigError, match="window_column"):
        list(SqlResource(url=source_url).read(SqlStream(table="orders"), window=(START, START)))


def test_sql_to_destination_round_trip(source_url: str, tmp_path: Path) -> None:
    dest = SqlDestination(url=f"sqlite:///{tmp_path / 'w.db'}")
    res = SqlResource(url=source_url)
    stream = SqlStream(table="orders", cursor_column="id", chunk_size=25)
    result = dest.load("orders", res.read(stream, state=dest.read_state("orders")), "append", state_key="orders")
    assert result.table.row_count == 100 and result.state_after == {"cursor": 100}
    again = dest.load("orders", res.read(stream, state=dest.read_state("orders")), "append", state_key="orders")
    assert again.rows_written == 0 and again.table.row_count == 100


def test_discover_and_check(source_url: str) -> None:
    res = SqlResource(url=source_url)
    (orders,) = [s for s in res.discover() if s.name == "orders"]
    assert orders.columns["updated_at"] is T.TIMESTAMP and orders.columns["paid"] is _bool(source_url)
    assert "connected" in res.check()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="exactly one of `table` or `query`"):
        SqlStream()
    with pytest.raises(ValueError):
        SqlStream(table="orders; drop table x")
    with pytest.raises(ValueError):
        SqlStream(table="orders", cursor_column="id) OR (1=1")


def test_unreachable_database_error_masks_the_password() -> None:
    res = SqlResource(url="postgresql+psycopg://u:hunter2@127.0.0.1:1/db")
    with pytest.raises(SourceReadError) as info:
        res.check()
    assert "hunter2" not in str(info.value) and "u:***@127.0.0.1:1" in str(info.value)
