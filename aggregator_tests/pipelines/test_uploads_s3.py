"""Issue 19: with uploads in object storage (AGGREGATOR_UPLOADS_URL=s3://...), a pipeline whose sensor directory
and files connection are under the uploads root sees what the proxy delivered there: the sensor lists the
prefix (never the staged chunks) and the run reads the object. A real S3-compatible server (moto, with
authentication); credentials only in the AWS environment, as in a deployment."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from aggregator.pipelines.compile import build_definitions
from aggregator.pipelines.connections import build_source
from aggregator.pipelines.load import load_specs
from aggregator.proxy.storage.db import make_engine, migrate
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.s3 import S3Uploads
from aggregator.proxy.uploads.store import Chunk
from aggregator.settings import load_settings
from aggregator_tests.helpers import materialize_all
from aggregator_tests.pipelines.conftest import query
from aggregator_tests.s3_server import S3Server

SPEC = """
connections:
  drop:
    type: files
    config: {base_dir: ../home/uploads/inbox}
pipelines:
  - name: ingest
    sensor: {directory: inbox, pattern: "*.csv", interval_seconds: 30}
    sources:
      - {name: events, connection: drop, stream: {type: file, path: "*.csv"}, write_mode: replace}
"""


def test_sensor_and_run_see_uploads_delivered_to_object_storage(tmp_path: Path, s3_server: S3Server,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_server.new_bucket("sensor")
    for name, value in {"AGGREGATOR_HOME": str(tmp_path / "home"), "AGGREGATOR_UPLOADS_URL": f"s3://{bucket}/up",
                        "AGGREGATOR_UPLOADS_S3_ENDPOINT_URL": s3_server.endpoint,
                        "AGGREGATOR_WAREHOUSE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                        "AWS_ACCESS_KEY_ID": s3_server.access_key,
                        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.uploads_s3 is not None
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ingest.yaml").write_text(SPEC)
    defs = build_definitions(load_specs(specs, uploads_root=settings.uploads_root), settings)
    sensor = defs.resolve_sensor_def("ingest_files_sensor")

    engine = make_engine(f"sqlite:///{tmp_path / 'proxy.db'}")
    migrate(engine)
    store = S3Uploads(settings.uploads_s3, engine, UploadLimits())
    final = settings.uploads_root / "inbox" / "a.csv"
    data = b"id,kind\n1,click\n2,view\n3,click\n"
    try:
        with dg.instance_for_test() as instance:
            store.append("ingest", "a.csv", final, "ann", Chunk(0, 9, len(data), data[:10]))  # staged, not delivered
            staged = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
            assert not staged.run_requests, "a staged chunk is not a delivered file"
            store.append("ingest", "a.csv", final, "ann", Chunk(10, len(data) - 1, len(data), data[10:]))
            first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
            assert first.run_requests is not None and len(first.run_requests) == 1, first.skip_message
            again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor,
                                                                 definitions=defs))
            assert again.run_requests == []
    finally:
        engine.dispose()
    materialize_all(defs)
    assert sorted(query(f"sqlite:///{tmp_path / 'w.db'}", "SELECT id, kind FROM ingest_events")) == [
        (1, "click"), (2, "view"), (3, "click")]
    assert not (settings.uploads_root / "inbox").exists()  # nothing on the local disk
    # Checks and previews (the worker, the CLI) build the connection the same way: they see the bucket too.
    specs_loaded = load_specs(specs, uploads_root=settings.uploads_root)
    conn, _ = specs_loaded.connections["drop"]
    assert build_source(conn, "drop").check() == f"s3://{bucket}/up/inbox: readable, 1 files"
