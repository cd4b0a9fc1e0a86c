"""MySQL/MariaDB warehouses are refused as load targets, before anything is written.

Regression: a load into MariaDB that added a column mid-stream and then failed left the rows written before the
`ALTER TABLE` committed (MySQL commits DDL implicitly) with the cursor unchanged, so a rerun loaded them twice.
Until the destination stages rows and applies DDL ahead of its one transaction, such loads are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from aggregator.destinations.errors import DestinationError
from aggregator.destinations.schema import WriteMode
from aggregator.destinations.sql import SqlDestination
from connectors.batches import Batch
from connectors.records import TypeTracker
from connectors.sql.engines import dispose_engines


def _rows(state: dict[str, object] | None) -> Iterator[Batch]:
    tracker = TypeTracker()
    yield tracker.from_records([{"id": 1}], state={"cursor": 1})
    yield tracker.from_records([{"id": 2, "added_mid_load": "x"}], state={"cursor": 2})
    raise RuntimeError("the source failed after a column was added")


@pytest.mark.parametrize("mode", ["append", "merge", "replace"])
def test_a_mysql_load_is_refused_before_anything_is_written(mysql_url: str, mode: WriteMode) -> None:
    destination = SqlDestination(url=mysql_url)
    try:
        with pytest.raises(DestinationError, match="commits DDL .* implicitly.*refused"):
            destination.load("events", _rows, mode, primary_key=("id",) if mode == "merge" else (),
                             state_key=None if mode == "replace" else "p.events")
        assert destination.check().endswith("(mysql)")  # still reachable for checks and reads
        with destination.engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # no table, no state table, no stage
    finally:
        dispose_engines()
