"""MySQL/MariaDB as a source, on a real server: the type edge cases where loads from MySQL usually break.

(The shared SQL source tests in test_sql.py also run against MariaDB.)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.destinations.sql import SqlDestination
from connectors.batches import ColumnType as T
from connectors.records import TypeHints
from connectors.sql import SqlResource, SqlStream

U64_MAX = 2**64 - 1


@pytest.fixture
def edge_cases(mysql_url: str) -> str:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        # Zero dates need a permissive SQL mode, as in the many older schemas that hold them.
        conn.exec_driver_sql("SET SESSION sql_mode = ''")
        conn.exec_driver_sql(
            "CREATE TABLE edge (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, big BIGINT UNSIGNED, "
            "amount DECIMAL(12, 4), born DATE, seen DATETIME, name VARCHAR(40)) CHARACTER SET utf8mb4")
        conn.exec_driver_sql(
            "INSERT INTO edge (big, amount, born, seen, name) VALUES "
            f"({U64_MAX}, 12.3456, '0000-00-00', '0000-00-00 00:00:00', 'Zoë 🚀 漢字'), "
            "(7, NULL, '2024-00-00', '2024-03-01 10:00:00', NULL), "
            "(8, -0.5, '2024-03-01', NULL, 'plain')")
    engine.dispose()
    return mysql_url.replace("mysql+pymysql://", "mysql://")  # the plain scheme users write means PyMySQL


def test_zero_dates_arrive_as_null_and_keep_the_column_typed(edge_cases: str) -> None:
    (batch,) = SqlResource(url=edge_cases).read(SqlStream(table="edge", columns=["id", "born", "seen"]))
    assert batch.types == {"id": T.INTEGER, "born": T.DATE, "seen": T.TIMESTAMP}
    assert batch.rows == [(1, None, None), (2, None, dt.datetime(2024, 3, 1, 10)), (3, dt.date(2024, 3, 1), None)]


def test_utf8mb4_text_round_trips_into_each_warehouse(edge_cases: str, load_warehouse_url: str) -> None:
    dest = SqlDestination(url=load_warehouse_url)
    stream = SqlStream(table="edge", columns=["id", "name", "born"])
    # Another name than the source's: the MySQL warehouse is the source's own database here.
    dest.load("edge_copy", SqlResource(url=edge_cases).read(stream), "replace")
    with dest.engine.connect() as conn:  # the cached engine: a throwaway one would leak its connection
        rows = conn.execute(sa.text("SELECT id, name, born FROM edge_copy ORDER BY id")).all()
    assert [(r[0], r[1]) for r in rows] == [(1, "Zoë 🚀 漢字"), (2, None), (3, "plain")]
    assert rows[0][2] is None


def test_decimal_arrives_as_float_and_unsigned_bigint_exactly_as_declared_text(edge_cases: str, tmp_path: Path) -> None:
    """DECIMAL loads as float (the portable numeric type, as from PostgreSQL). An unsigned BIGINT above the signed
    range fits no warehouse's BIGINT: declared as text it loads exactly."""
    res = SqlResource(url=edge_cases)
    (batch,) = res.read(SqlStream(table="edge", columns=["id", "amount"]))
    assert batch.types["amount"] is T.FLOAT and [r[1] for r in batch.rows] == [12.3456, None, -0.5]
    assert not any(isinstance(r[1], Decimal) for r in batch.rows)
    hinted = list(res.read(SqlStream(table="edge", columns=["id", "big"]), hints=TypeHints({"big": T.TEXT})))
    assert [r[1] for r in hinted[0].rows] == [str(U64_MAX), "7", "8"]
    dest = SqlDestination(url=f"sqlite:///{tmp_path / 'w.db'}")
    dest.load("big", iter(hinted), "replace")
    with dest.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT big FROM big WHERE id = 1")).scalar() == str(U64_MAX)


def test_incremental_cursor_on_an_unsigned_auto_increment_key(edge_cases: str, tmp_path: Path) -> None:
    res = SqlResource(url=edge_cases)
    stream = SqlStream(table="edge", columns=["id", "name"], cursor_column="id", chunk_size=2)
    dest = SqlDestination(url=f"sqlite:///{tmp_path / 'w.db'}")
    first = dest.load("edge", res.read(stream, state=dest.read_state("edge")), "append", state_key="edge")
    assert first.rows_written == 3 and first.state_after == {"cursor": 3}
    engine = sa.create_engine(edge_cases.replace("mysql://", "mysql+pymysql://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO edge (big, name) VALUES (9, 'new')")
    engine.dispose()
    again = dest.load("edge", res.read(stream, state=dest.read_state("edge")), "append", state_key="edge")
    assert again.rows_written == 1 and again.state_after == {"cursor": 4}


def test_large_table_streams_in_chunks_from_a_server_side_cursor(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE many (id INT PRIMARY KEY, v VARCHAR(10))")
        conn.execute(sa.text("INSERT INTO many VALUES (:id, :v)"), [{"id": i, "v": f"v{i}"} for i in range(20000)])
    engine.dispose()
    sizes = [len(b) for b in SqlResource(url=mysql_url).read(SqlStream(table="many", chunk_size=5000))]
    assert sizes == [5000] * 4
