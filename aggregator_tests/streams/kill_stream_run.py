"""Run by test_stream_kill.py in its own process (the run worker): materialize the `events` pipeline of a spec
directory in process, announcing each batch the destination has written and waiting for a line on stdin before
the next, so the test can SIGKILL it mid-load with no sleeps.
Usage: python kill_stream_run.py <spec dir> <warehouse url> <AGGREGATOR_HOME>."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.connections import resource_class
from aggregator.pipelines.load import load_specs
from aggregator.settings import load_settings
from connectors.batches import Batch


def stepping(conn_type: str, config: dict[str, Any]) -> dg.ConfigurableResource:
    """The connection's real resource, announcing every batch it hands over (a second real resource, no patch)."""
    base = resource_class(conn_type)

    class Stepping(base):  # type: ignore[misc, valid-type]
        def read(self, *args: Any, **kwargs: Any) -> Iterator[Batch]:
            for count, batch in enumerate(super().read(*args, **kwargs), start=1):
                yield batch
                # The destination asked for the next batch: this one is written inside the transaction.
                print(f"written {count}", flush=True)
                if not sys.stdin.readline():
                    raise SystemExit("the test closed stdin")

    return Stepping(**config)


def main(spec_dir: str, warehouse_url: str, home: str) -> None:
    settings = load_settings({"AGGREGATOR_HOME": home, "AGGREGATOR_WAREHOUSE_URL": warehouse_url})
    specs = load_specs(Path(spec_dir), uploads_root=settings.uploads_root)
    defs = build_definitions(specs, settings)
    conn, _ = specs.connections["broker"]
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, resources={"broker": stepping(conn.type, conn.config)})
    print("done" if result.success else "failed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
