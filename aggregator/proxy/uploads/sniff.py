"""Whether the first bytes of an upload fit the extension its name claims."""

from __future__ import annotations

ALLOWED = "csv, tsv, txt, json, jsonl, ndjson, parquet, xlsx"


def sniff(filename: str, head: bytes) -> str | None:
    """Why the first bytes do not fit the extension, or None when they do."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext == "parquet":
        return None if head.startswith(b"PAR1") else "a .parquet file starts with PAR1"
    if ext in ("xlsx", "xlsm"):
        return None if head.startswith(b"PK\x03\x04") else "an Excel file is a ZIP archive (PK..)"
    if ext in ("csv", "tsv", "txt", "json", "jsonl", "ndjson"):
        if b"\x00" in head:
            return f"a .{ext} file is text; this one holds NUL bytes"
        if ext == "json" and head.lstrip()[:1] not in (b"{", b"[", b""):
            return "a .json file starts with { or ["
        return None
    return f"extension .{ext} is not accepted; allowed: {ALLOWED}"
