"""Log search over real runs on run-sharded SQLite and on PostgreSQL, checked against a brute-force filter
of every event (differential), paged to the end without duplicates or gaps."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from aggregator.logs.search import LEVELS, LogQuery, error_text, search_logs
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.alerts.conftest import SHOP_YAML

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def instance(storage_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    return storage_instance  # on SQLite and on PostgreSQL (aggregator_tests/conftest.py)


@pytest.fixture
def runs(instance: dg.DagsterInstance, tmp_path: Path) -> list[str]:
    """Three real runs of `shop`: success, failure (missing file), success; plus one run of another job."""
    specs_dir = tmp_path / "specs"
    (specs_dir / "data").mkdir(parents=True)
    (specs_dir / "shop.yaml").write_text(SHOP_YAML)
    orders = specs_dir / "data" / "orders.csv"
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"),
                              "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wh.db'}"})
    job = build_definitions(load_specs(specs_dir), settings).resolve_job_def("shop_job")
    ids = []
    for content in ("id,amount\n1,1.5\n2,3\n", None, "id,amount\n1,1.5\n2,3\n3,4\n"):
        if content is None:
            orders.unlink()
        else:
            orders.write_text(content)
        ids.append(job.execute_in_process(instance=instance, raise_on_error=False).run_id)

    @dg.op
    # unannotated: Dagster rejects the string annotation `from __future__ import annotations` makes
    def other_op(context) -> None:
        context.log.warning("orders.csv mentioned by another job")

    other = dg.GraphDefinition(name="other_job", node_defs=[other_op]).to_job()
    ids.append(other.execute_in_process(instance=instance).run_id)
    return ids


def brute_force(instance: dg.DagsterInstance, run_ids: list[str], query: LogQuery) -> list[tuple[str, str]]:
    out = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        assert run is not None
        if query.pipeline and run.tags.get("aggregator/pipeline") != query.pipeline:
            continue
        if query.run_id and run_id != query.run_id:
            continue
        for entry in instance.all_logs(run_id):
            level = entry.level if isinstance(entry.level, int) else logging.INFO
            if query.level and level < LEVELS[query.level]:
                continue
            if query.text and query.text.lower() not in f"{entry.message}\n{error_text(entry) or ''}".lower():
                continue
            when = dt.datetime.fromtimestamp(entry.timestamp, dt.UTC)
            if query.since and when < query.since:
                continue
            if query.until and when >= query.until:
                continue
            out.append((run_id, entry.message))
    return sorted(out)


def all_pages(instance: dg.DagsterInstance, query: LogQuery) -> list[tuple[str, str]]:
    seen, cursor, pages = [], None, 0
    while True:
        page = search_logs(instance, query.model_copy(update={"cursor": cursor}))
        assert len(page.lines) <= query.limit
        seen += [(line.run_id, line.message) for line in page.lines]
        keys = [(line.run_id, line.storage_id) for line in page.lines]
        assert len(keys) == len(set(keys))
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return sorted(seen)
        assert pages < 1000


FILTERS = [
    {},
    {"text": "ORDERS.CSV"},
    {"level": "ERROR"},
    {"level": "WARNING", "text": "orders"},
    {"pipeline": "shop"},
    {"pipeline": "shop", "text": "wrote"},
    {"text": "100%_"},
    {"text": 'quote"d'},
]


def test_search_matches_brute_force(instance: dg.DagsterInstance, runs: list[str]) -> None:
    """Every filter combination, at page sizes 1, 7 and 500 (one set of runs: they are the slow part)."""
    for filters in FILTERS:
        for limit in (1, 7, 500):
            query = LogQuery(limit=limit, **filters)
            assert all_pages(instance, query) == brute_force(instance, runs, query), (filters, limit)


def test_search_by_run_and_time_range(instance: dg.DagsterInstance, runs: list[str]) -> None:
    failed = runs[1]
    by_run = LogQuery(run_id=failed, level="ERROR", limit=50)
    found = all_pages(instance, by_run)
    assert found and {r for r, _ in found} == {failed}
    page = search_logs(instance, by_run)
    assert any("orders.csv" in (line.error or "") for line in page.lines if line.event_type == "STEP_FAILURE")
    first_end = max(e.timestamp for e in instance.all_logs(runs[0]))
    window = LogQuery(since=dt.datetime.fromtimestamp(first_end, dt.UTC) + dt.timedelta(microseconds=1), limit=500)
    assert runs[0] not in {r for r, _ in all_pages(instance, window)}
    assert all_pages(instance, window) == brute_force(instance, runs, window)


def test_cli_search_prints_lines_and_a_cursor(instance: dg.DagsterInstance, runs: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(Path(instance.root_directory)))
    result = CliRunner().invoke(main, ["logs", "search", "--pipeline", "shop", "--level", "error", "--limit", "1",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert '"level": "ERROR"' in result.output and "next page: --cursor" in result.output


def test_bad_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        LogQuery(level="LOUD")
