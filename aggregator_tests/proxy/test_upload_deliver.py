"""Delivery of a staged upload killed at every step, and killed again at every step of its recovery.

The class behind issue 20 item 6 is "a crash between two writes of the finalization"; a crash during the
recovery is one more such point. Each combination runs the steps in a real process that SIGKILLs itself
(`AGGREGATOR_UPLOAD_FAULT_AT`), then recovers in this one: the sensor directory holds nothing or the whole
file at every moment, and in the end the file once, whole, with the staging area clean.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.proxy.uploads.deliver import recover
from aggregator.proxy.uploads.faults import STEPS
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.staging import Staging

DATA = b"id,name\n" + b"".join(f"{i},n{i}\n".encode() for i in range(5000))

SCRIPT = """
import sys
from pathlib import Path
from aggregator.proxy.uploads.deliver import finalize, recover
from aggregator.proxy.uploads.limits import UploadLimits
from aggregator.proxy.uploads.staging import Staging

root, mode = Path(sys.argv[1]), sys.argv[2]
data = Path(sys.argv[3]).read_bytes()
staging = Staging(root, UploadLimits())
up = staging.upload("p", "f.csv")
if mode == "upload":
    with staging.locked(up, create=True):
        meta = staging.new_meta("p", "f.csv", "ann", len(data), root / "inbox" / "f.csv")
        staging.write_meta(up, meta)
        up.part.write_bytes(data)
        finalize(staging, up, meta)
else:
    with staging.locked(up, create=False) as held:
        if held:
            recover(staging, up)
"""


def run(tmp_path: Path, mode: str, fault: str) -> int:
    env = {**os.environ, "AGGREGATOR_UPLOAD_FAULT_AT": fault}
    (tmp_path / "data.bin").write_bytes(DATA)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "uploads"), mode, str(tmp_path / "data.bin")],
                          check=False, env=env, timeout=120, capture_output=True)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()
    return done.returncode


def assert_never_partial(inbox: Path) -> None:
    names = sorted(p.name for p in inbox.iterdir()) if inbox.exists() else []
    visible = [n for n in names if not n.startswith(".")]
    assert visible in ([], ["f.csv"]), names
    if visible:
        assert (inbox / "f.csv").read_bytes() == DATA


@pytest.mark.parametrize("first", STEPS)
@pytest.mark.parametrize("second", STEPS)
def test_crash_in_delivery_then_in_recovery_ends_delivered_once(tmp_path: Path, first: str, second: str) -> None:
    root = tmp_path / "uploads"
    inbox = root / "inbox"
    assert run(tmp_path, "upload", first) == -signal.SIGKILL
    assert_never_partial(inbox)
    run(tmp_path, "recover", second)  # may die again, or have nothing left at that step
    assert_never_partial(inbox)
    staging = Staging(root, UploadLimits())
    up = staging.upload("p", "f.csv")
    with staging.locked(up, create=False) as held:
        if held:
            assert recover(staging, up) is None
    assert sorted(p.name for p in inbox.iterdir()) == ["f.csv"]
    assert (inbox / "f.csv").read_bytes() == DATA
    assert not up.dir.exists()
    assert len(list(staging.delivered.glob("*.json"))) == 1
    assert staging.usage("ann") == (len(DATA), len(DATA))


def test_a_file_that_appeared_meanwhile_is_never_overwritten(tmp_path: Path) -> None:
    """Someone else put a file of that name into the directory after the upload started: the upload is rolled
    back, their file stays."""
    root = tmp_path / "uploads"
    assert run(tmp_path, "upload", "recorded") == -signal.SIGKILL
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    (root / "inbox" / "f.csv").write_bytes(b"theirs\n")
    staging = Staging(root, UploadLimits())
    up = staging.upload("p", "f.csv")
    with staging.locked(up, create=False) as held:
        assert held and recover(staging, up) is None
    assert (root / "inbox" / "f.csv").read_bytes() == b"theirs\n"
    assert not up.dir.exists()
