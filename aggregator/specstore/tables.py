"""Tables of the spec store, created by the platform database's migrations (proxy/storage/db.py).

One row per store revision (who, when, why) and one row per file changed in it: the files of revision N are,
for each path, its row with the largest revision <= N (content NULL: deleted). Nothing is ever updated in
place, so any earlier revision can be read back exactly (a run pinned to it loads it).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

revisions = sa.Table(
    "spec_store_revisions", metadata,
    # Assigned by the writer as head + 1, never by the database: the primary key is the compare-and-swap (of
    # two writers that read the same head, only one can insert the next revision).
    sa.Column("revision", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),  # api:create, apply, directory, seed, ...
    sa.Column("digest", sa.String(64), nullable=False),  # of every file at this revision (Snapshot.digest)
)

files = sa.Table(
    "spec_store_files", metadata,
    sa.Column("path", sa.String(500), primary_key=True),  # relative, POSIX separators
    sa.Column("revision", sa.Integer, sa.ForeignKey("spec_store_revisions.revision"), primary_key=True),
    sa.Column("content", sa.Text, nullable=True),  # NULL: deleted at this revision
)


def create(conn: sa.Connection) -> None:
    """Migration step: the spec store's tables."""
    metadata.create_all(conn, checkfirst=True)
