"""/metrics from real runs on SQLite (run-sharded) and PostgreSQL event storage: parses, counts right, and
each scrape folds in only what is new (a second scrape after one more run adds exactly that run)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.metrics.exposition import Exposition
from aggregator.metrics.proxy import auth_failure, observe_request
from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from aggregator_tests.alerts.conftest import SHOP_YAML
from aggregator_tests.postgres import PgDatabase

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def instance(storage_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    return storage_instance  # on SQLite and on PostgreSQL (aggregator_tests/conftest.py)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_from_real_runs_parse_and_are_incremental(instance: dg.DagsterInstance, tmp_path: Path) -> None:
    specs_dir = tmp_path / "specs"
    (specs_dir / "data").mkdir(parents=True)
    (specs_dir / "shop.yaml").write_text(SHOP_YAML)
    orders = specs_dir / "data" / "orders.csv"
    orders.write_text("id,amount\n1,1.5\n2,3.0\n3,4.5\n")
    settings = load_settings({"AGGREGATOR_HOME": str(tmp_path / "home"),
                              "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'wh.db'}"})
    job = build_definitions(load_specs(specs_dir), settings).resolve_job_def("shop_job")
    exposition = Exposition(instance)

    assert job.execute_in_process(instance=instance).success
    orders.unlink()
    assert not job.execute_in_process(instance=instance, raise_on_error=False).success
    first = samples(exposition.render())
    shop = (("pipeline", "shop"),)
    assert first[("aggregator_runs_total", (*shop, ("status", "success")))] == 1
    assert first[("aggregator_runs_total", (*shop, ("status", "failure")))] == 1
    assert first[("aggregator_run_duration_seconds_count", shop)] == 2
    assert first[("aggregator_rows_loaded_total", (*shop, ("table", "shop_orders")))] == 3
    assert first[("aggregator_asset_check_passing", (("asset", "shop/orders"), ("check", "row_count")))] == 1
    last_load = first[("aggregator_asset_last_materialization_timestamp_seconds",
                       (("asset", "shop/orders"), *shop))]
    assert last_load > 0

    orders.write_text("id,amount\n1,1.5\n")
    assert job.execute_in_process(instance=instance).success
    second = samples(exposition.render())
    assert second[("aggregator_runs_total", (*shop, ("status", "success")))] == 2
    assert second[("aggregator_runs_total", (*shop, ("status", "failure")))] == 1
    assert second[("aggregator_rows_loaded_total", (*shop, ("table", "shop_orders")))] == 4
    assert second[("aggregator_asset_check_passing", (("asset", "shop/orders"), ("check", "row_count")))] == 0
    assert second[("aggregator_asset_check_evaluations_total",
                   (("asset", "shop/orders"), ("check", "row_count"), ("outcome", "failed"), ("severity", "ERROR")))] == 1
    assert second[("aggregator_asset_last_materialization_timestamp_seconds",
                   (("asset", "shop/orders"), *shop))] >= last_load
    # a scrape with nothing new changes nothing
    assert samples(exposition.render()) == second


def test_proxy_counters_parse() -> None:
    observe_request("/graphql", "POST", 200, 0.012)
    auth_failure("unauthenticated")
    with dg.instance_for_test() as instance:
        parsed = samples(Exposition(instance).render())
    assert parsed[("aggregator_proxy_requests_total", (("method", "POST"), ("route", "/graphql"), ("status", "200")))] >= 1
    assert parsed[("aggregator_proxy_auth_failures_total", (("reason", "unauthenticated"),))] >= 1
    assert ("aggregator_proxy_request_duration_seconds_count", (("route", "/graphql"),)) in parsed


@dg.op
def failing_op() -> None:
    raise RuntimeError("a failure the metrics must count once")


@dg.job(tags={"aggregator/pipeline": "restarts"})
def failing_job() -> None:
    failing_op()


@pytest.fixture
def pg_instance(pg_db: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """The deployed instance (deploy/dagster.yaml) on a fresh PostgreSQL database."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", pg_db.dsn)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_a_restarted_collector_never_shows_a_lower_count(pg_instance: dg.DagsterInstance,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 19, minor 8): a restarted `metrics serve` counted the history in batches, one per scrape,
    so its first scrapes showed counts below the previous process's: Prometheus read the drop as a reset and
    `increase()` counted old failures as new. `catch_up()` (run before the port opens) reads all of it first.
    Batches of 1 here, so three runs need several reads. On PostgreSQL, the deployed storage: on Dagster's
    per-run SQLite storage (`aggregator dev`) small batches skip runs (a separate defect, not fixed here)."""
    from aggregator.metrics import dagster_collector

    instance = pg_instance

    for _ in range(3):
        assert not failing_job.execute_in_process(instance=instance, raise_on_error=False).success
    key = ("aggregator_runs_total", (("pipeline", "restarts"), ("status", "failure")))
    assert samples(Exposition(instance).render())[key] == 3, "the previous process, caught up"

    monkeypatch.setattr(dagster_collector, "BATCH", 1)
    partial = Exposition(instance)
    assert samples(partial.render())[key] < 3, "served part-way, the count drops (the defect)"
    restarted = Exposition(instance)
    restarted.collector.catch_up()
    assert samples(restarted.render())[key] == 3
