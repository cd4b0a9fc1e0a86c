"""Uploads: chunked and resumable (Content-Range), into the sensor's directory only when complete; bad names,
sizes and contents refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator_tests.proxy.api.conftest import ApiStack

SENSOR_SPEC = """pipelines:
  - name: api_inbox
    sensor: {directory: inbox, pattern: "*.csv"}
    sources:
      - name: rows
        connection: inbox_files
        stream: {type: file, path: "*.csv"}
connections:
  inbox_files:
    type: files
    config: {base_dir: ../uploads/inbox}
"""


@pytest.fixture(scope="module")
def inbox(api_stack: ApiStack) -> Iterator[Path]:
    directory = api_stack.home / "uploads" / "inbox"  # under the uploads root, AGGREGATOR_HOME/uploads
    directory.mkdir(parents=True, exist_ok=True)
    with api_stack.client("editor") as c:
        r = c.post("/api/pipelines", json={"name": "api_inbox", "yaml": SENSOR_SPEC})
        assert r.status_code == 201, r.text
    yield directory


def put(stack: ApiStack, name: str, data: bytes, first: int, total: int, who: str = "launcher") -> tuple[int, dict]:
    with stack.client(who) as c:
        r = c.put(f"/api/uploads/api_inbox/{name}", content=data, headers={
            "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}",
            "Content-Type": "application/octet-stream"})
    return r.status_code, r.json()


def test_resume_after_interruption(api_stack: ApiStack, inbox: Path) -> None:
    """Two chunks arrive, the third is lost; the client asks for the offset and resumes; the file appears
    in the sensor's directory only once whole."""
    payload = b"id,name\n" + b"".join(f"{i},row {i}\n".encode() for i in range(3000))
    total = len(payload)
    a, b = total // 3, 2 * total // 3
    assert put(api_stack, "big.csv", payload[:a], 0, total)[0] == 200
    assert put(api_stack, "big.csv", payload[a:b], a, total)[0] == 200
    assert not (inbox / "big.csv").exists()
    # A retry of an old chunk is refused with the offset to resume from.
    status, body = put(api_stack, "big.csv", payload[:a], 0, total)
    assert status == 409 and str(b) in body["detail"]
    with api_stack.client("launcher") as c:
        progress = c.get("/api/uploads/api_inbox/big.csv").json()
    assert progress == {"filename": "big.csv", "received": b, "total": total, "complete": False}
    status, body = put(api_stack, "big.csv", payload[progress["received"]:], progress["received"], total)
    assert status == 200 and body["complete"] is True
    assert (inbox / "big.csv").read_bytes() == payload
    # The same bytes again (a client that lost the answer) are answered as delivered; other bytes never
    # overwrite the delivered file.
    assert put(api_stack, "big.csv", payload, 0, total) == (200, {**progress, "received": total, "complete": True})
    assert put(api_stack, "big.csv", payload.replace(b"row", b"wor"), 0, total)[0] == 409
    assert (inbox / "big.csv").read_bytes() == payload


@pytest.mark.parametrize("name", ["..", ".hidden.csv", "..%2F..%2Fevil.csv", "%2e%2e", "a%2Fb.csv", "a%5Cb.csv",
                                  "x" * 200 + ".csv"])
def test_path_traversal_and_unsafe_names_refused(api_stack: ApiStack, inbox: Path, name: str) -> None:
    status, _ = put(api_stack, name, b"a\n", 0, 2)
    assert status in (400, 404), status
    assert sorted(p.name for p in api_stack.specs_dir.parent.rglob("*evil*")) == []
    assert not any(p.name.startswith(".hidden") for p in inbox.iterdir())


def test_size_limit_and_content_sniffing(api_stack: ApiStack, inbox: Path) -> None:
    assert put(api_stack, "huge.csv", b"a", 0, 10 << 30)[0] == 413
    status, body = put(api_stack, "fake.parquet", b"id,name\n1,x\n", 0, 12)
    assert status == 415 and "PAR1" in body["detail"]
    assert put(api_stack, "bin.csv", b"a\x00b", 0, 3)[0] == 415
    assert put(api_stack, "run.sh", b"echo", 0, 4)[0] == 415
    assert put(api_stack, "bad_range.csv", b"abc", 0, 2)[0] == 400


def test_pipeline_without_sensor_takes_no_uploads(api_stack: ApiStack) -> None:
    with api_stack.client("launcher") as c:
        r = c.put("/api/uploads/sales/x.csv", content=b"a\n", headers={"Content-Range": "bytes 0-1/2"})
    assert r.status_code == 409 and "sensor" in r.json()["detail"]


def test_same_chunk_sent_twice_at_once_is_appended_once(api_stack: ApiStack, inbox: Path) -> None:
    """Two clients retrying the same chunk concurrently: one appends it, the other is told the new offset."""
    import threading

    payload = b"id\n" + b"1\n" * 5000
    first = payload[:4000]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(put(api_stack, "twice.csv", first, 0, len(payload))[0])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(statuses) == [200, 409], statuses
    assert put(api_stack, "twice.csv", payload[4000:], 4000, len(payload))[0] == 200
    assert (inbox / "twice.csv").read_bytes() == payload



@pytest.mark.parametrize("directory", ["/tmp", "../dagster", "../specs"])  # noqa: S108 - the reported case
def test_sensor_directory_outside_the_uploads_root_is_refused_by_the_api(api_stack: ApiStack, directory: str) -> None:
    """Issue 18 class 8: an editor pointed a sensor at /tmp (or into AGGREGATOR_HOME), and uploads went there."""
    spec = SENSOR_SPEC.replace("api_inbox", "api_escape").replace("{directory: inbox,", f"{{directory: {directory},")
    with api_stack.client("editor") as c:
        r = c.post("/api/pipelines", json={"name": "api_escape", "yaml": spec})
    assert r.status_code == 422, r.text
    [problem] = r.json()["problems"]
    assert problem["field"] == "pipelines[0].sensor.directory" and problem["line"] == 3
    assert "outside the uploads root" in problem["message"]
    assert not (api_stack.specs_dir / "api_escape.yaml").exists()
