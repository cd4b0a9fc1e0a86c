"""Where a file sensor may watch: only under the uploads root, the one place uploads are written.

A sensor's directory is where `PUT /api/uploads/...` delivers files, so a sensor on `/tmp` or on
`AGGREGATOR_HOME` would let a launcher write there. Relative directories are taken under the uploads root;
absolute ones must resolve (symlinks followed, `..` removed) to a directory under it. Names below the root
that start with `.` are refused: the root's hidden `.staging` directory holds partial uploads.
"""

from __future__ import annotations

from pathlib import Path

from aggregator.settings import load_settings

RULE = ("a sensor directory must be under the uploads root (AGGREGATOR_UPLOADS_DIR, default "
        "AGGREGATOR_HOME/uploads); write it relative to that root, e.g. `directory: inbox`")


def default_uploads_root() -> Path:
    """The uploads root of this process's settings (the proxy, the code server and runs share them)."""
    return load_settings().uploads_root


def resolve_sensor_directory(value: str, uploads_root: Path) -> Path:
    """The absolute directory a sensor watches; ValueError naming the rule when it leaves the uploads root."""
    root = uploads_root.resolve()
    path = Path(value).expanduser()
    resolved = (path if path.is_absolute() else root / path).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ValueError(f"{value!r} is outside the uploads root: {RULE}")
    hidden = [part for part in resolved.relative_to(root).parts if part.startswith(".")]
    if hidden:
        raise ValueError(f"{value!r} uses the hidden name {hidden[0]!r} (reserved for staged uploads): {RULE}")
    return resolved
