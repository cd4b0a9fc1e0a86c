"""Uploads staged in object storage (proxy/uploads/s3.py) keep the local store's promises: resume from
`received`, 409 on a wrong offset, a retried last chunk answered as delivered, quotas per user and in total,
expiry, cancel by uploader or editor, never replacing a file, a compose whose memory does not grow with the
file. Against a real S3-compatible server (moto, with authentication) and a real platform database (SQLite
and PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.proxy.api.errors import ApiError
from aggregator.proxy.storage.db import uploads
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.s3 import S3Uploads
from aggregator.proxy.uploads.s3_compose import PART_BYTES
from aggregator.proxy.uploads.store import Chunk
from aggregator.uploads_s3 import STAGING, S3Root
from aggregator_tests.processes import free_port
from aggregator_tests.s3_server import S3Server

LIMITS = UploadLimits(max_file_bytes=1 << 30, user_quota_bytes=1000, total_quota_bytes=3000, staged_ttl_s=3600)


@dataclass
class Area:
    """One store over a fresh bucket, with helpers that speak in local paths as the routes do."""

    store: S3Uploads
    client: Any
    bucket: str
    root: Path

    def final(self, name: str, directory: str = "inbox") -> Path:
        return self.root / directory / name

    def put(self, user: str, name: str, data: bytes, first: int, total: int, directory: str = "inbox") -> Any:
        return self.store.append(directory, name, self.final(name, directory), user,
                                 Chunk(first, first + len(data) - 1, total, data))

    def object(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.bucket, Key=f"uploads/{key}")["Body"].read()
        return body

    def keys(self, under: str = "") -> list[str]:
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"uploads/{under}").get("Contents", [])
        return sorted(o["Key"].removeprefix("uploads/") for o in found)

    def staged(self) -> list[str]:
        return self.keys(f"{STAGING}/")


def make_area(s3_server: S3Server, engine: Engine, tmp_path: Path, limits: UploadLimits = LIMITS) -> Area:
    bucket = s3_server.new_bucket("uploads")
    root = S3Root(bucket, "uploads", tmp_path / "uploads", endpoint_url=s3_server.endpoint)
    client = s3_server.client()
    return Area(S3Uploads(root, engine, limits, client=client), client, bucket, root.local_root)


@pytest.fixture
def area(s3_server: S3Server, engine: Engine, tmp_path: Path) -> Area:
    return make_area(s3_server, engine, tmp_path)


def refused(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.status, str(info.value.detail)


def csv(n: int) -> bytes:
    return (b"id\n" + b"1\n" * n)[:n]


def test_resume_wrong_offset_and_retried_last_chunk(area: Area) -> None:
    payload = b"id,name\n" + b"".join(f"{i},row {i}\n".encode() for i in range(60))
    total = len(payload)
    a, b = total // 3, 2 * total // 3
    assert area.put("ann", "big.csv", payload[:a], 0, total).received == a
    assert area.put("ann", "big.csv", payload[a:b], a, total).received == b
    assert area.keys("inbox/") == []
    status, detail = refused(lambda: area.put("ann", "big.csv", payload[:a], 0, total))
    assert status == 409 and f"byte {b}" in detail
    progress = area.store.status("inbox", "big.csv", area.final("big.csv"))
    assert (progress.received, progress.total, progress.complete) == (b, total, False)
    done = area.put("ann", "big.csv", payload[b:], b, total)
    assert (done.received, done.complete) == (total, True)
    assert area.object("inbox/big.csv") == payload
    assert area.staged() == []
    # A client that lost the answer sends the last chunk again: delivered. Other bytes never replace the file.
    again = area.put("ann", "big.csv", payload[b:], b, total)
    assert (again.received, again.complete) == (total, True)
    assert area.put("ann", "big.csv", payload, 0, total).complete is True
    assert refused(lambda: area.put("ann", "big.csv", payload.replace(b"row", b"wor"), 0, total))[0] == 409
    assert refused(lambda: area.put("ann", "late.csv", csv(4), 4, 8))[0] == 409  # nothing to continue
    assert area.object("inbox/big.csv") == payload


def test_same_chunk_twice_at_once_is_accepted_once(area: Area) -> None:
    payload = csv(900)
    barrier = threading.Barrier(2)
    outcomes: list[int] = []

    def send() -> None:
        barrier.wait()
        try:
            area.put("ann", "twice.csv", payload[:400], 0, len(payload))
            outcomes.append(200)
        except ApiError as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == [200, 409], outcomes
    assert area.put("ann", "twice.csv", payload[400:], 400, len(payload)).complete is True
    assert area.object("inbox/twice.csv") == payload
    assert area.staged() == []


def test_user_quota_counts_staged_and_delivered_files(area: Area) -> None:
    assert area.put("ann", "a.csv", csv(600), 0, 600).complete is True  # delivered, still counts
    status, detail = refused(lambda: area.put("ann", "b.csv", csv(10), 0, 500))
    assert status == 413 and "quota of ann: 600 of 1000 bytes" in detail
    assert area.put("bob", "b.csv", csv(10), 0, 500).received == 10  # another user's quota
    area.client.delete_object(Bucket=area.bucket, Key="uploads/inbox/a.csv")  # consumed: the room is back
    assert area.put("ann", "c.csv", csv(10), 0, 500).received == 10


def test_total_quota_counts_everything_under_the_root(area: Area) -> None:
    area.put("ann", "a.csv", csv(10), 0, 1000)
    area.put("bob", "b.csv", csv(10), 0, 1000)
    area.client.put_object(Bucket=area.bucket, Key="uploads/other/dropped.csv", Body=csv(500))
    status, detail = refused(lambda: area.put("cy", "c.csv", csv(10), 0, 600))
    assert status == 507 and "2500 of 3000 bytes" in detail
    assert area.put("cy", "c.csv", csv(10), 0, 400).received == 10


def age(area: Area, name: str) -> None:
    """Make a staged upload look idle for twice the expiry age (instead of waiting an hour)."""
    with area.store.rows.engine.begin() as conn:
        conn.execute(sa.update(uploads).where(uploads.c.filename == name)
                     .values(last_at=time.time() - 2 * LIMITS.staged_ttl_s))


def test_staged_upload_expires_and_gives_its_quota_back(area: Area) -> None:
    area.put("ann", "old.csv", csv(100), 0, 900)
    area.put("bob", "gone.csv", csv(100), 0, 900, directory="other")
    age(area, "old.csv")
    progress = area.store.status("inbox", "old.csv", area.final("old.csv"))
    assert (progress.received, progress.total) == (0, None)
    status, detail = refused(lambda: area.put("ann", "old.csv", csv(100), 100, 900))
    assert status == 409 and "start again" in detail
    age(area, "gone.csv")
    # A new upload sweeps every expired one (not only its own), and their staged bytes no longer count.
    assert area.put("ann", "new.csv", csv(100), 0, 900).received == 100
    assert [k.split("/")[1] for k in area.staged()] == [area.store.rows.get("inbox", "new.csv").id]  # type: ignore[union-attr]


def test_cancel_by_uploader_or_editor_only(area: Area) -> None:
    def only(user: str) -> Callable[[str], None]:
        def check(owner: str) -> None:
            if owner != user:
                raise ApiError(403, "not yours")
        return check

    area.put("ann", "mine.csv", csv(100), 0, 900)
    assert refused(lambda: area.store.cancel("inbox", "mine.csv", only("bob")))[0] == 403
    cancelled = area.store.cancel("inbox", "mine.csv", only("ann"))
    assert (cancelled.filename, cancelled.removed_bytes) == ("mine.csv", 100)
    assert area.staged() == []
    assert area.put("ann", "done.csv", csv(50), 0, 50).complete is True
    status, detail = refused(lambda: area.store.cancel("inbox", "done.csv", only("ann")))
    assert status == 404 and "delivered" in detail
    assert area.keys("inbox/") == ["inbox/done.csv"]


def test_a_file_that_appears_meanwhile_is_never_replaced(area: Area) -> None:
    area.put("ann", "race.csv", csv(100), 0, 200)
    area.client.put_object(Bucket=area.bucket, Key="uploads/inbox/race.csv", Body=b"theirs\n")
    area.put("ann", "race.csv", csv(200)[100:], 100, 200)
    assert area.object("inbox/race.csv") == b"theirs\n"
    assert area.staged() == []
    assert area.store.rows.get("inbox", "race.csv") is None


def test_compose_streams_small_chunks_and_copies_large_ones(s3_server: S3Server, engine: Engine,
                                                           tmp_path: Path) -> None:
    """Large chunks become parts by server-side copy, small ones go through a bounded buffer: the proxy's
    memory while composing 48 MiB of 1 MiB chunks stays far below the file's size."""
    big = LIMITS.model_copy(update={"user_quota_bytes": 1 << 30, "total_quota_bytes": 1 << 31})
    area = make_area(s3_server, engine, tmp_path, big)
    mixed = bytes(range(256)) * ((6 << 20) // 256)  # 6 MiB: copied by the server
    payload = mixed + mixed + b"x\n" * 1000
    cuts = [0, len(mixed), 2 * len(mixed), 2 * len(mixed) + 3, len(payload)]  # two large, then two small
    for first, end in itertools.pairwise(cuts):
        status = area.put("ann", "mixed.bin", payload[first:end], first, len(payload), directory="raw")
    assert status.complete is True and area.object("raw/mixed.bin") == payload
    # Two copied parts and one buffered part (streaming all of it would have made two parts of 8 MiB + rest).
    etag = area.client.head_object(Bucket=area.bucket, Key="uploads/raw/mixed.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), etag

    step = 1 << 20
    many = b"id\n" + b"1\n" * ((48 << 20) // 2)
    for first in range(0, len(many) - step, step):
        area.put("ann", "many.csv", many[first:first + step], first, len(many))
    last = len(many) - (len(many) % step or step)
    tracemalloc.start()
    try:
        done = area.put("ann", "many.csv", many[last:], last, len(many))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert done.complete is True
    assert peak < 3 * PART_BYTES < len(many) / 2, peak
    got = area.client.get_object(Bucket=area.bucket, Key="uploads/inbox/many.csv")["Body"].read()
    assert got == many


def test_a_delivery_whose_replica_died_is_finished_by_the_next_request(area: Area) -> None:
    """A replica accepted the last chunk (so it claimed the delivery) and died before composing: once the claim
    is stale, the next request touching the upload, on any replica, delivers it, once."""
    payload = csv(300)
    area.put("ann", "orphan.csv", payload[:200], 0, 300)
    row = area.store.rows.get("inbox", "orphan.csv")
    assert row is not None
    key = f"uploads/{STAGING}/{row.id}/{200:015d}-dead"
    area.client.put_object(Bucket=area.bucket, Key=key, Body=payload[200:])
    claimed = area.store.rows.accept(row, 200, 100, key)  # what the dead replica did before it died
    assert claimed is not None and claimed.state == "delivering"
    fresh = area.store.status("inbox", "orphan.csv", area.final("orphan.csv"))
    assert (fresh.received, fresh.complete) == (300, False)  # a live claim is left alone
    with area.store.rows.engine.begin() as conn:
        conn.execute(sa.update(uploads).where(uploads.c.id == row.id).values(claimed_at=time.time() - 3600))
    done = area.store.status("inbox", "orphan.csv", area.final("orphan.csv"))
    assert (done.received, done.complete) == (300, True)
    assert area.object("inbox/orphan.csv") == payload
    assert area.staged() == [] and area.store.rows.get("inbox", "orphan.csv") is None
    # The client of the dead replica retries its last chunk: answered as delivered.
    assert area.put("ann", "orphan.csv", payload[200:], 200, 300).complete is True


def test_storage_that_does_not_answer_is_503_and_accepts_nothing(s3_server: S3Server, engine: Engine,
                                                                 tmp_path: Path) -> None:
    """The bucket unreachable (or refusing the proxy's key) is the platform's fault: 503 with the reason, the
    upload's offset unchanged, so the client sends the same chunk again."""
    import boto3
    from botocore.config import Config

    area = make_area(s3_server, engine, tmp_path)
    area.put("ann", "flaky.csv", csv(100), 0, 300)
    closed = f"http://127.0.0.1:{free_port()}"
    down = boto3.client("s3", endpoint_url=closed, aws_access_key_id="k", aws_secret_access_key="s",
                        region_name="us-east-1", config=Config(connect_timeout=2, retries={"max_attempts": 1}))
    wrong_key = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="AKIAWRONG",
                             aws_secret_access_key="wrong-secret", region_name="us-east-1")
    for client, reason in ((down, "EndpointConnectionError"), (wrong_key, "InvalidAccessKeyId")):
        broken = S3Uploads(S3Root(area.bucket, "uploads", area.root), engine, LIMITS, client=client)
        with pytest.raises(ApiError) as info:
            broken.append("inbox", "flaky.csv", area.final("flaky.csv"), "ann", Chunk(100, 199, 300, csv(300)[100:200]))
        status, detail = info.value.status, str(info.value.detail)
        assert status == 503 and reason in detail and "wrong-secret" not in detail, detail
    progress = area.store.status("inbox", "flaky.csv", area.final("flaky.csv"))
    assert progress.received == 100
    assert area.put("ann", "flaky.csv", csv(300)[100:], 100, 300).complete is True


