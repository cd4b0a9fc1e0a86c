"""Which files of a stream are new, and the cursor committed with the last batch of each file.

Three rules, chosen by the stream's `incremental_by`:

* `files` (default): `{"files": {name: fingerprint}}`, every file loaded with the version it had. A new file or
  a rewritten one (new size, modification time or ETag) loads. Exact, but the state grows with the number
  of files: right for directories that are cleaned up, or a few thousand objects.
* `modified`: `{"modified_after": ISO time, "modified_names": [...]}`, files read in modification-time order;
  a file is new when it was modified after the newest one loaded. Stores keep times to the second (S3) or
  coarser, so the names already loaded *at* that exact time are kept too: an object written in the same
  second after a load is still picked up, and none loads twice. The state stays small however many objects
  the prefix holds.
* `name`: `{"name_after": name}`, files read in name order; a file is new when its name sorts after the last
  one loaded. For drops named by date (`orders-2026-12-07.csv`): constant state, and rewriting an old file
  never reloads it.

Each rule returns the state *including* the file just read, so committing it with that file's last batch is
exactly once: a load killed mid-file restarts that file from its first row (its rows rolled back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.files.entry import Entry


@dataclass
class Cursor:
    rule: str
    files: dict[str, str] = field(default_factory=dict)
    modified_after: dt.datetime | None = None
    modified_names: set[str] = field(default_factory=set)
    name_after: str | None = None

    @classmethod
    def start(cls, rule: str, state: dict[str, Any] | None) -> Cursor:
        state = state or {}
        after = state.get("modified_after")
        return cls(
            rule=rule,
            files=dict(state.get("files", {})),
            modified_after=dt.datetime.fromisoformat(after) if after else None,
            modified_names=set(state.get("modified_names", [])),
            name_after=state.get("name_after"),
        )

    def order(self, entries: Sequence[Entry]) -> list[Entry]:
        """The order files are read in, which is the order the cursor advances in."""
        if self.rule == "modified":
            return sorted(entries, key=lambda e: (e.modified, e.name))
        return sorted(entries, key=lambda e: e.name)

    def is_new(self, entry: Entry) -> bool:
        if self.rule == "modified":
            if self.modified_after is None:
                return True
            return entry.modified > self.modified_after or (
                entry.modified == self.modified_after and entry.name not in self.modified_names)
        if self.rule == "name":
            return self.name_after is None or entry.name > self.name_after
        return self.files.get(entry.name) != entry.fingerprint()

    def advance(self, entry: Entry) -> dict[str, Any]:
        """Record `entry` as loaded; the state to commit with its last batch."""
        if self.rule == "modified":
            if self.modified_after != entry.modified:
                self.modified_after, self.modified_names = entry.modified, set()
            self.modified_names.add(entry.name)
            return {"modified_after": entry.modified.isoformat(), "modified_names": sorted(self.modified_names)}
        if self.rule == "name":
            self.name_after = entry.name
            return {"name_after": entry.name}
        self.files[entry.name] = entry.fingerprint()
        return {"files": dict(self.files)}
