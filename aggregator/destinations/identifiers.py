"""Identifiers that come from configuration are validated here before they reach SQL."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Literal

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain SQL identifier, else raise ValueError saying what is allowed."""
    if not IDENTIFIER_RE.match(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return name


def scratch_name(kind: Literal["stage", "old"], table: str) -> str:
    """A fresh name for a load's or transform's staging table of `table` (`stage`), or for the previous table
    a swap renames away (`old`). It starts with `scratch_prefix(kind, table)`: where DDL does not roll back
    (MySQL), a killed replace leaves it behind, and the next load of `table` finds it by that prefix."""
    return f"{scratch_prefix(kind, table)}{uuid.uuid4().hex[:12]}"


def scratch_prefix(kind: Literal["stage", "old"], table: str) -> str:
    # Hashed: any table name fits MySQL's 64 characters (`_stage_` + 16 + `_` + 12 = 36), and a prefix names
    # one table only.
    return f"_{kind}_{hashlib.sha256(table.encode()).hexdigest()[:16]}_"
