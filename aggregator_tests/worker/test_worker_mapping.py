"""A source's column mapping in the worker's answers: the schema it discovers and the rows it previews (and that
transform previews compute over) are named as the table names them, and excluded columns are never sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aggregator_tests.proxy.conftest import stop_process
from aggregator_tests.worker.test_worker import Worker, _start

SPEC = """
connections:
  local: {type: files, config: {base_dir: data}}
pipelines:
  - name: m
    sources:
      - name: people
        connection: local
        stream: {type: file, path: people.csv}
        columns:
          Full Name: {rename: full_name}
          ssn: {exclude: true}
          age: {type: text}
        sensitive_columns: [full_name]
    transforms:
      - name: names
        sql: "SELECT full_name, age FROM {{ ref('people') }}"
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    root = tmp_path_factory.mktemp("worker-mapping")
    (root / "specs" / "data").mkdir(parents=True)
    (root / "specs" / "m.yaml").write_text(SPEC)
    (root / "specs" / "data" / "people.csv").write_text("Full Name,ssn,age\nAda,111-22,36\nGrace,333-44,45\n")
    running = _start(root)
    try:
        yield running
    finally:
        stop_process(running.proc)


def test_discovered_schema_is_named_as_the_table_and_the_source(worker: Worker) -> None:
    answer = worker.call("source-schema", {"pipeline": "m", "source": "people"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["error"] is None
    assert body["columns"] == {"full_name": "text", "age": "text"}
    assert body["source_columns"] == {"Full Name": "text", "ssn": "text", "age": "text"}


def test_previews_never_carry_an_excluded_column(worker: Worker) -> None:
    source = worker.call("preview-source", {"pipeline": "m", "source": "people", "limit": 5})
    assert source.status_code == 200, source.text
    assert source.json()["columns"] == {"full_name": "text", "age": "text"}
    assert source.json()["rows"] == [["***", "36"], ["***", "45"]]
    assert "111-22" not in source.text
    transform = worker.call("preview-transform", {"pipeline": "m", "transform": "names", "limit": 5})
    assert transform.status_code == 200, transform.text
    assert transform.json()["rows"] == [["***", "36"], ["***", "45"]]
