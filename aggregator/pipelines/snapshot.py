"""Pin a run to the specs it was launched with.

The code server loads the specs; each run worker and each step process it starts imports the code location
again. Re-reading the YAML there would let a run execute a mix of versions (or fail on a file saved mid-run
that it does not even use). So the process that first loads a spec directory puts a snapshot of it in the
environment (inline, or for large spec sets a file under AGGREGATOR_HOME); its descendants (run workers, step
processes, forkservers) load that snapshot instead of the directory. A process never uses a snapshot it did not inherit, so a
long-lived process that re-imports the code location (a test, `dagster dev` reloading) always sees the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

SNAPSHOT_ENV = "AGGREGATOR_SPEC_SNAPSHOT"
log = logging.getLogger(__name__)


def _ancestors() -> set[int]:
    """PIDs of this process's ancestors, from /proc (empty where there is no /proc)."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        # The command name (field 2) may hold spaces and parentheses; the parent PID follows the last ')'.
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def read_texts(root: Path) -> dict[Path, str]:
    """The spec files under `root` as text; an unreadable file is left for the loader to report."""
    from aggregator.pipelines.load import spec_paths  # heavy; `aggregator dev` needs only SNAPSHOT_ENV

    texts: dict[Path, str] = {}
    for path in spec_paths(root):
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except OSError:
            continue
    return texts


def inherited(root: Path) -> dict[Path, str] | None:
    """The snapshot of `root` an ancestor process loaded, if there is one."""
    value = os.environ.get(SNAPSHOT_ENV)
    if not value:
        return None
    try:
        text = value.removeprefix(_INLINE) if value.startswith(_INLINE) else Path(value).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        return None
    if data.get("root") != str(root) or data.get("pid") == os.getpid():
        return None
    ancestors = _ancestors()
    if ancestors and data.get("pid") not in ancestors:
        return None  # inherited from an unrelated process (e.g. a copied environment)
    return {Path(p): t for p, t in data["files"].items()}


# Small spec sets travel in the variable itself: nothing is written. Larger ones go to a file under
# AGGREGATOR_HOME (a single environment string is limited to 128 KiB on Linux).
_INLINE = "json:"
INLINE_MAX = 64 * 1024
KEEP_S = 7 * 24 * 3600  # longer than any run: a run worker may read its snapshot until the run ends


def _prune(directory: Path) -> None:
    """Remove snapshots older than a week (one is written per process that loads a large spec set)."""
    cutoff = time.time() - KEEP_S
    for old in directory.glob("*.json"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue


def pinned_texts(root: Path, home: Path) -> dict[Path, str] | None:
    """The spec texts this process should load: the inherited snapshot, else the files now (then recorded
    for descendants). None when `root` does not exist (the loader reports it)."""
    if (texts := inherited(root)) is not None:
        return texts
    if not root.exists():
        return None
    texts = read_texts(root)
    record = json.dumps({"root": str(root), "pid": os.getpid(), "files": {str(p): t for p, t in texts.items()}})
    if len(record) <= INLINE_MAX:
        os.environ[SNAPSHOT_ENV] = _INLINE + record
        return texts
    target = home / "spec_snapshots" / f"{hashlib.sha256(record.encode()).hexdigest()[:24]}.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _prune(target.parent)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(record, encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        log.warning("cannot write spec snapshot %s (%s); runs will re-read the spec files", target, exc.strerror)
        return texts
    os.environ[SNAPSHOT_ENV] = str(target)
    return texts
