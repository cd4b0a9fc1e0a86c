"""Issue 12.1: runs execute in process by default; a pipeline opts into a process (or pod) per step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

SPEC = """
pipelines:
  - {name: plain, transforms: [{name: t, sql: "SELECT 1 AS n"}]}
  - {name: isolated, executor: multiprocess, transforms: [{name: t, sql: "SELECT 1 AS n"}]}
  - {name: podded, executor: k8s, transforms: [{name: t, sql: "SELECT 1 AS n"}]}
"""


def test_executor_per_pipeline_and_in_process_by_default(
    spec_dir: Path, compile_specs: Callable[[str], dg.Definitions], tmp_path: Path
) -> None:
    (spec_dir / "p.yaml").write_text(SPEC)
    defs = compile_specs(f"sqlite:///{tmp_path / 'w.db'}")
    names = {job: defs.resolve_job_def(f"{job}_job").executor_def.name for job in ("plain", "isolated", "podded")}
    assert names == {"plain": "in_process", "isolated": "multiprocess", "podded": "k8s"}
    # UI "Materialize" and `dagster asset materialize` use the implicit job: the platform default.
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"


def test_unknown_executor_is_a_located_spec_error(spec_dir: Path, compile_specs: Callable[[str], dg.Definitions]) -> None:
    from aggregator.pipelines.load import SpecErrors

    (spec_dir / "p.yaml").write_text("pipelines:\n  - name: x\n    executor: threads\n")
    with pytest.raises(SpecErrors, match=r"p.yaml:3: pipelines\[0\].executor: Input should be 'in_process', "
                                         r"'multiprocess' or 'k8s'"):
        compile_specs("sqlite://")
