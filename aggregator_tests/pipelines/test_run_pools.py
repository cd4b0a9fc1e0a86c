"""One run per pipeline at a time by default: a pipeline's assets are in the Dagster pool `pipeline/<name>`, and the
shipped instances (dagster.yaml, deploy/*.yaml) limit every pool to one run with `run` granularity, so the run
queue holds a second run of the pipeline however it was started. `overlapping_runs: true` opts a pipeline out."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter

from aggregator_tests.conftest import REPO

SPEC = """
pipelines:
  - name: serial
    transforms:
      - {name: one, sql: "SELECT 1 AS n"}
      - {name: two, sql: "SELECT n + 1 AS n FROM {{ ref('one') }}"}
  - name: parallel
    overlapping_runs: true
    transforms:
      - {name: one, sql: "SELECT 1 AS n"}
"""


@pytest.fixture
def local_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """The instance `aggregator dev` makes: a copy of aggregator/dagster.yaml, SQLite storage."""
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO / "aggregator" / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.yaml", "deploy/dagster.k8s.yaml"])
def test_every_shipped_instance_allows_one_run_per_pool(config: str) -> None:
    pools = yaml.safe_load((REPO / config).read_text())["concurrency"]["pools"]
    assert pools == {"default_limit": 1, "granularity": "run"}


def test_pipeline_assets_are_in_their_pipeline_pool(spec_dir: Path, tmp_path: Path,
                                                    compile_specs: Callable[[str], dg.Definitions]) -> None:
    (spec_dir / "p.yaml").write_text(SPEC)
    defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.materializable_asset_keys}
    assert pools == {"serial/one": {"pipeline/serial"}, "serial/two": {"pipeline/serial"}, "parallel/one": set()}


def test_the_run_queue_holds_a_second_run_of_a_pipeline_until_the_first_ends(
    spec_dir: Path, tmp_path: Path, compile_specs: Callable[[str], dg.Definitions],
    local_instance: dg.DagsterInstance,
) -> None:
    (spec_dir / "p.yaml").write_text(SPEC)
    job = compile_specs(f"sqlite:///{tmp_path / 'w.db'}").resolve_implicit_global_asset_job_def()
    instance = local_instance

    def run(*keys: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
        selection = frozenset(dg.AssetKey.from_user_string(k) for k in keys)
        created = instance.create_run_for_job(job, asset_selection=selection, status=status)
        return created

    running = run("serial/one", status=dg.DagsterRunStatus.STARTED)
    queued = run("serial/two", status=dg.DagsterRunStatus.NOT_STARTED)  # another asset of the pipeline, waiting (its status is not what the queue judges)
    other = run("parallel/one", status=dg.DagsterRunStatus.NOT_STARTED)
    assert queued.run_op_concurrency is not None and queued.run_op_concurrency.all_pools == {"pipeline/serial"}

    def blocked(candidate: dg.DagsterRun) -> bool:
        # What the run queue daemon decides in one pass (two passes: the first sets the pool to its default limit).
        in_progress = instance.get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]))
        for _ in range(2):
            counter = GlobalOpConcurrencyLimitsCounter(
                instance, [candidate], in_progress, concurrency_keys=instance.event_log_storage.get_concurrency_keys(),
                pool_limits=instance.event_log_storage.get_pool_limits(),
                pool_granularity=instance.get_concurrency_config().pool_config.pool_granularity,
            )
        return counter.is_blocked(candidate)

    assert blocked(queued)
    assert not blocked(other)  # overlapping_runs: true puts the pipeline in no pool

    instance.report_run_canceled(running)  # the first run ended: the pool's slot is free again
    assert not blocked(queued)

    # Configurable per pipeline: an admin raises one pipeline's limit, and two of its runs may overlap.
    again = run("serial/one", status=dg.DagsterRunStatus.STARTED)
    assert blocked(queued)
    instance.event_log_storage.set_concurrency_slots("pipeline/serial", 2)
    assert not blocked(queued)
    instance.report_run_canceled(again)
