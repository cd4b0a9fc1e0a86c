"""Uploads have quotas (per user, in total), staged parts expire, a staged upload can be cancelled, and a
refused request writes nothing (issue 18 class 8: no quota, no expiry, no delete, lock files for refused names).
Against a real `aggregator proxy` process with small limits."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator_tests.proxy.api.upload_stack import UploadStack, make_stack, upstream_app
from aggregator_tests.testapi import serve

TTL_S = 3600


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UploadStack]:
    with serve(upstream_app()) as upstream:
        stack = make_stack(tmp_path_factory.mktemp("upload-limits"), upstream,
                           AGGREGATOR_UPLOAD_USER_QUOTA_BYTES="1000", AGGREGATOR_UPLOAD_TOTAL_QUOTA_BYTES="3000",
                           AGGREGATOR_UPLOAD_MAX_BYTES="2000", AGGREGATOR_UPLOAD_STAGED_TTL_S=str(TTL_S))
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(autouse=True)
def clean(stack: UploadStack) -> Iterator[None]:
    """Each test starts with nothing uploaded: staged uploads cancelled, delivered files consumed."""
    yield
    for who in ("ann", "bob", "cy"):
        for pipeline in ("drop", "other"):
            area = stack.root / ".staging" / "uploads" / pipeline
            for name in sorted(p.name for p in area.iterdir()) if area.exists() else []:
                stack.request("ed" if pipeline == "drop" else "other_ed", "DELETE", name, pipeline)
    for directory in (stack.inbox, stack.root / "other"):
        for f in directory.glob("*") if directory.exists() else []:
            f.unlink()


def csv(n: int) -> bytes:
    return (b"id\n" + b"1\n" * n)[:n]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_refused_requests_write_nothing(stack: UploadStack) -> None:
    """Every refusal is decided before the disk is touched: no lock file, no directory, no part."""
    assert stack.put("ann", "keep.csv", csv(10), 0, 100).status_code == 200  # the staging area exists
    before = tree(stack.root)
    refused = [
        (stack.put("ann", ".hidden.csv", csv(4), 0, 4), 400),
        (stack.put("ann", "a..b.csv", csv(4), 0, 4), 400),
        (stack.put("ann", "run.sh", b"echo", 0, 4), 415),
        (stack.put("ann", "bin.csv", b"a\x00b", 0, 3), 415),
        (stack.put("ann", "fake.parquet", csv(12), 0, 12), 415),
        (stack.put("ann", "big.csv", csv(10), 0, 5000), 413),
        (stack.put("ann", "quota.csv", csv(10), 0, 1000), 413),  # 100 staged + 1000 > 1000
        (stack.put("ann", "range.csv", csv(4), 0, 3), 400),
        (stack.put("ann", "late.csv", csv(4), 4, 8), 409),  # no upload in progress to continue
        (stack.put("ann", "x.csv", csv(4), 0, 4, pipeline="plain"), 409),  # no sensor
        (stack.put("ann", "x.csv", csv(4), 0, 4, pipeline="nope"), 404),
        (stack.request("ann", "GET", "never.csv"), 200),
        (stack.request("ann", "DELETE", "never.csv"), 404),
    ]
    assert [r.status_code for r, _ in refused] == [s for _, s in refused], [r.text for r, _ in refused]
    assert tree(stack.root) == before


def test_user_quota_counts_staged_and_delivered_files(stack: UploadStack) -> None:
    assert stack.put("ann", "a.csv", csv(600), 0, 600).json()["complete"] is True  # delivered, still counts
    refused = stack.put("ann", "b.csv", csv(10), 0, 500)
    assert refused.status_code == 413
    assert "quota of ann: 600 of 1000 bytes" in refused.json()["detail"], refused.text
    assert stack.put("bob", "b.csv", csv(10), 0, 500).status_code == 200  # another user's quota
    (stack.inbox / "a.csv").unlink()  # the pipeline consumed it: the room is back
    assert stack.put("ann", "c.csv", csv(10), 0, 500).status_code == 200


def test_total_quota_is_507(stack: UploadStack) -> None:
    assert stack.put("ann", "a.csv", csv(10), 0, 1000).status_code == 200
    assert stack.put("bob", "b.csv", csv(10), 0, 1000).status_code == 200
    (stack.root / "other").mkdir(exist_ok=True)
    (stack.root / "other" / "dropped.csv").write_bytes(csv(500))  # any file under the root counts
    refused = stack.put("cy", "c.csv", csv(10), 0, 600)
    assert refused.status_code == 507 and refused.json()["error"] == "insufficient_storage", refused.text
    assert "2500 of 3000 bytes" in refused.json()["detail"]
    assert stack.put("cy", "c.csv", csv(10), 0, 400).status_code == 200


def age(stack: UploadStack, pipeline: str, name: str) -> None:
    """Make a staged upload look idle for twice the expiry age (instead of waiting an hour)."""
    then = time.time() - 2 * TTL_S
    for f in (stack.root / ".staging" / "uploads" / pipeline / name).iterdir():
        os.utime(f, (then, then))


def test_staged_upload_expires_when_touched(stack: UploadStack) -> None:
    assert stack.put("ann", "old.csv", csv(100), 0, 900).status_code == 200
    age(stack, "drop", "old.csv")
    assert stack.request("ann", "GET", "old.csv").json() == {"filename": "old.csv", "received": 0, "total": None,
                                                            "complete": False}
    assert stack.staged() == []
    resumed = stack.put("ann", "old.csv", csv(100), 100, 900)
    assert resumed.status_code == 409 and "start again" in resumed.json()["detail"]


def test_expired_uploads_are_swept_and_give_their_quota_back(stack: UploadStack) -> None:
    assert stack.put("ann", "old.csv", csv(100), 0, 900).status_code == 200
    assert stack.put("bob", "other.csv", csv(100), 0, 900, pipeline="other").status_code == 200
    age(stack, "drop", "old.csv")
    age(stack, "other", "other.csv")
    # A new upload sweeps every expired one (not only its own), and ann's 900 staged bytes no longer count.
    assert stack.put("ann", "new.csv", csv(100), 0, 900).status_code == 200
    assert stack.staged() == ["uploads/drop/new.csv", "uploads/drop/new.csv/data.part", "uploads/drop/new.csv/lock",
                              "uploads/drop/new.csv/meta.json"]


def test_cancel_by_uploader_or_editor_only(stack: UploadStack) -> None:
    assert stack.put("ann", "mine.csv", csv(100), 0, 900).status_code == 200
    other = stack.request("bob", "DELETE", "mine.csv")
    assert other.status_code == 403 and "editor" in other.json()["missing_permission"], other.text
    assert stack.request("other_ed", "DELETE", "mine.csv").status_code == 403  # an editor of another pipeline: no
    cancelled = stack.request("ann", "DELETE", "mine.csv")
    assert cancelled.status_code == 200 and cancelled.json() == {"filename": "mine.csv", "removed_bytes": 100}
    assert stack.staged() == []
    assert stack.put("bob", "theirs.csv", csv(100), 0, 900).status_code == 200
    assert stack.request("ed", "DELETE", "theirs.csv").json()["removed_bytes"] == 100  # the pipeline's editor
    assert stack.put("ann", "done.csv", csv(50), 0, 50).json()["complete"] is True
    delivered = stack.request("ann", "DELETE", "done.csv")
    assert delivered.status_code == 404 and "delivered" in delivered.json()["detail"]
    assert (stack.inbox / "done.csv").exists()
