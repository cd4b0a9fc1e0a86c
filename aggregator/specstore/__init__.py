"""The spec store: pipeline spec files in the platform database, versioned, read by every component.

The database is the store of record (tables.py); a specs directory on disk is applied into it (directory.py)
and, where one is configured and writable, kept in step with it. Readers take a `Snapshot` at a store revision
(store.py); `current.py` is what every process calls to get the specs it should load now.
"""
