"""Moving a whole upload into the sensor's directory, so that a crash at any point ends in "delivered once".

The order (each step durable before the next; `faults.py` names the points between them):
  1. every byte is appended and fsynced to `data.part`                                      -> "received"
  2. the finalization record `commit.json` is written (atomically, fsynced)                 -> "recorded"
  3. `data.part` is hard-linked to the final path (a link never replaces a file); dir fsync   -> "linked"
  4. `data.part` is unlinked                                                                -> "unlinked"
  5. `meta.json` is unlinked and the record moved to the delivered ledger                   -> "ledgered"
  6. the upload's directory is removed
Recovery (`recover`, run with the upload's lock on every request that touches it and for every upload when
the proxy starts) looks at what is on disk and continues from there: a record means "finish delivering";
a part holding every declared byte without a record means step 1 completed, so it finishes too. The sensor
never sees a partial file (the link is atomic; copies across filesystems use a hidden name it ignores).
"""

from __future__ import annotations

import errno
import filecmp
import logging
import os
import shutil
from pathlib import Path

from aggregator.proxy.uploads.durable import fsync_dir, read_json, write_json
from aggregator.proxy.uploads.faults import fault_point
from aggregator.proxy.uploads.staging import Meta, Staging, Upload

log = logging.getLogger(__name__)


def finalize(staging: Staging, up: Upload, meta: Meta) -> None:
    """Every byte of `meta.total` is in the part: record the decision, then deliver."""
    fault_point("received")
    write_json(up.commit, {"id": meta.id, "user": meta.user, "final": meta.final, "size": meta.total})
    fault_point("recorded")
    deliver(staging, up)


def deliver(staging: Staging, up: Upload) -> None:
    """Carry out (or finish) the delivery the record in `up.commit` describes."""
    record = read_json(up.commit)
    if record is None:
        return
    final = Path(record["final"])
    if up.part.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        if not _place(up.part, final):
            # Someone put another file of that name there after this upload started (uploads never replace
            # a file): roll this one back rather than overwrite theirs.
            log.warning("upload %s not delivered: %s appeared meanwhile; staged bytes removed", record["id"], final.name)
            staging.remove(up)
            return
        fsync_dir(final.parent)
        fault_point("linked")
        up.part.unlink()
        fsync_dir(up.dir)
        fault_point("unlinked")
    # Without meta the upload no longer counts as staged; the record alone says what is left to do.
    up.meta.unlink(missing_ok=True)
    fsync_dir(up.dir)
    staging.delivered.mkdir(parents=True, exist_ok=True)
    os.replace(up.commit, staging.delivered / f"{record['id']}.json")
    fsync_dir(staging.delivered)
    fault_point("ledgered")
    staging.remove(up)


def _place(part: Path, final: Path) -> bool:
    """Put `part`'s bytes at `final` without replacing another file; False when `final` is someone else's."""
    try:
        os.link(part, final)
        return True
    except FileExistsError:
        return os.path.samefile(part, final)  # our own link, made before a crash
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
    # A sensor directory on another filesystem (a mount under the root) or one without hard links: copy
    # under a hidden name the sensor ignores, then link that (still never replacing a file).
    hidden = final.with_name(f".{final.name}.uploading")
    hidden.unlink(missing_ok=True)  # a copy a crash left behind
    if final.exists():
        # Ours if a crash came after the copy was placed but before the part was unlinked.
        return filecmp.cmp(part, final, shallow=False)
    shutil.copyfile(part, hidden)
    with open(hidden, "rb+") as copied:
        os.fsync(copied.fileno())
    try:
        try:
            os.link(hidden, final)
        except FileExistsError:
            return False
        except OSError:  # no hard links at all: a rename, checked just before (under the upload's lock)
            if final.exists():
                return False
            os.replace(hidden, final)
    finally:
        hidden.unlink(missing_ok=True)
    return True


def recover(staging: Staging, up: Upload) -> Meta | None:
    """Bring one upload (its lock held) to a consistent state; returns its meta if it is still staged."""
    if up.commit.exists():
        deliver(staging, up)
        return None
    meta = up.read_meta()
    if meta is None:
        if up.dir.exists():
            staging.remove(up)  # a directory without meta: a start that died before its first byte
        return None
    if up.received() == meta.total:
        finalize(staging, up, meta)  # the last chunk was written, the proxy died before recording it
        return None
    if staging.expired(up):
        log.info("staged upload %s/%s expired (no chunk for %ss); removed", meta.pipeline, meta.filename,
                 staging.limits.staged_ttl_s)
        staging.remove(up)
        return None
    return meta


def sweep(staging: Staging) -> None:
    """Recover or expire every staged upload nobody is working on right now (at start, and per new upload)."""
    for up in staging.all_uploads():
        with staging.locked(up, create=False, wait=False) as held:
            if held:
                recover(staging, up)
